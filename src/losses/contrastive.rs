//! Contrastive losses between two views of a batch: NT-Xent (SimCLR, Chen et al. 2020) and the
//! supervised contrastive loss (SupCon, Khosla et al. 2020), as CoTMix (Eldele et al. 2023)
//! uses them on its original and temporally mixed windows.
//!
//! Both stack the views as 2N anchors `[a; b]`; anchor i's denominator runs over the 2N − 1
//! other anchors. The maximum of those is subtracted (detached) before the exponentials, which
//! leaves the value unchanged and keeps small temperatures and long rows finite.

use candle_core::{DType, Result, Tensor, D};

/// `log Σ_{k ≠ i} exp(s_ik)` for every row i of the square similarity matrix `s` `[M, M]`.
///
/// The diagonal is pushed to −10³⁰ before the exponentials, so that neither the row maximum
/// nor the sum sees it: a self-similarity far above the others (a long unnormalised row) would
/// otherwise underflow every other term to 0 (a log of 0), or overflow its own.
fn log_sum_exp_off_diagonal(s: &Tensor) -> Result<Tensor> {
    let m = s.dim(0)?;
    let masked = (s + Tensor::eye(m, s.dtype(), s.device())?.affine(-1e30, 0.0)?)?;
    let max = masked.max_keepdim(D::Minus1)?.detach();
    let e = masked.broadcast_sub(&max)?.exp()?;
    e.sum_keepdim(D::Minus1)?.log()?.broadcast_add(&max)
}

/// Rows of `x` `[M, d]` divided by their L2 norms (at least 10⁻⁸, as `torch.nn.functional
/// .normalize`), so that z zᵀ holds the cosine similarities.
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-8)?;
    x.broadcast_div(&norm)
}

/// NT-Xent between the views `a` `[N, d]` and `b` `[N, d]` (row i of each is a positive pair),
/// cosine similarity at temperature `tau`:
///
/// (1/2N) Σ_i −log( exp(s_i,p(i)) / Σ_{k ≠ i} exp(s_ik) ),  s = cos(z_i, z_k) / τ, z = [a; b],
///
/// p(i) being i's other view. CoTMix's target-side loss (its `NTXentLoss(τ = 0.2, cosine)`).
pub fn nt_xent(a: &Tensor, b: &Tensor, tau: f64) -> Result<Tensor> {
    let n = a.dim(0)?;
    let z = unit_rows(&Tensor::cat(&[a, b], 0)?)?;
    let s = z.matmul(&z.t()?)?.affine(1.0 / tau, 0.0)?;
    // Row i's positive is column (i + N) mod 2N: the sum of s under that permutation.
    let pair: Vec<u32> = (0..2 * n).map(|i| ((i + n) % (2 * n)) as u32).collect();
    let pair = Tensor::from_vec(pair, (2 * n, 1), a.device())?;
    let positive = s.gather(&pair, 1)?;
    (log_sum_exp_off_diagonal(&s)? - positive)?.mean_all()
}

/// The supervised contrastive loss of the views `a` `[N, d]` and `b` `[N, d]` with class ids
/// `labels` `[N]` (u32): every other anchor of the same class is a positive,
///
/// −τ · (1/2N) Σ_i (1/|P(i)|) Σ_{p ∈ P(i)} log( exp(s_ip) / Σ_{k ≠ i} exp(s_ik) ),  s = z zᵀ / τ,
///
/// on the raw (unnormalised) rows z = [a; b], scaled by τ: CoTMix's `SupConLoss(τ = 0.2)` as
/// its code computes it, on the classifier's logits. P(i) always holds i's other view.
pub fn sup_con(a: &Tensor, b: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    let n = a.dim(0)?;
    let y = labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let mut positives = vec![0f64; 4 * n * n];
    let mut counts = vec![0f64; 2 * n];
    for i in 0..2 * n {
        for k in 0..2 * n {
            if k != i && y[i % n] == y[k % n] {
                positives[i * 2 * n + k] = 1.0;
                counts[i] += 1.0;
            }
        }
    }
    let positives = Tensor::from_vec(positives, (2 * n, 2 * n), a.device())?.to_dtype(a.dtype())?;
    let counts = Tensor::from_vec(counts, (2 * n, 1), a.device())?.to_dtype(a.dtype())?;
    let z = Tensor::cat(&[a, b], 0)?;
    let s = z.matmul(&z.t()?)?.affine(1.0 / tau, 0.0)?;
    let log_prob = s.broadcast_sub(&log_sum_exp_off_diagonal(&s)?)?;
    let mean_positive = (log_prob * positives)?
        .sum_keepdim(D::Minus1)?
        .broadcast_div(&counts)?;
    mean_positive.mean_all()?.affine(-tau, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;

    fn t(v: &[f64], rows: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (rows, v.len() / rows), &Device::Cpu).unwrap()
    }

    fn scalar(x: Tensor) -> f64 {
        x.to_scalar::<f64>().unwrap()
    }

    /// Two generic views of 3 rows × 3 dimensions, and their 6 rows as [a; b].
    fn generic_views() -> (Tensor, Tensor, Vec<Vec<f64>>) {
        let a = t(&[0.3, -1.2, 2.0, 0.5, 1.1, 0.0, -0.7, 0.9, -2.0], 3);
        let b = t(&[1.5, 0.2, -0.4, 0.1, 0.8, 0.3, -1.0, 1.0, 0.6], 3);
        let rows = [&a, &b]
            .iter()
            .flat_map(|v| v.to_vec2::<f64>().unwrap())
            .collect();
        (a, b, rows)
    }

    fn assert_close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn nt_xent_matches_hand_computed_values() -> Result<()> {
        // One pair: the only other anchor is the positive, so every term is log 1 = 0.
        let a = t(&[1.0, 2.0], 1);
        let b = t(&[-3.0, 0.5], 1);
        assert!(scalar(nt_xent(&a, &b, 0.2)?).abs() < 1e-12);
        // Views equal to (e1, e2): each anchor's positive has cosine 1, its two negatives
        // cosine 0, so every term is −5 + log(e⁵ + 2) = log(1 + 2e⁻⁵) at τ = 0.2. Scaling a row
        // does not change a cosine.
        let a = t(&[1.0, 0.0, 0.0, 1.0], 2);
        let b = t(&[3.0, 0.0, 0.0, 0.5], 2);
        let want = (1.0 + 2.0 * (-5f64).exp()).ln();
        assert!((scalar(nt_xent(&a, &b, 0.2)?) - want).abs() < 1e-12);
        // Against the definition, term by term, on a generic case.
        let (a, b, rows) = generic_views();
        let cos = |u: &[f64], v: &[f64]| {
            let dot: f64 = u.iter().zip(v).map(|(x, y)| x * y).sum();
            let nu = u.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nv = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            dot / nu / nv
        };
        let tau = 0.5;
        let mut total = 0.0;
        for i in 0..6 {
            let p = (i + 3) % 6;
            let den: f64 = (0..6)
                .filter(|&k| k != i)
                .map(|k| (cos(&rows[i], &rows[k]) / tau).exp())
                .sum();
            total += -(cos(&rows[i], &rows[p]) / tau) + den.ln();
        }
        let got = scalar(nt_xent(&a, &b, tau)?);
        assert_close(got, total / 6.0);
        Ok(())
    }

    #[test]
    fn sup_con_matches_hand_computed_values() -> Result<()> {
        // Views (e1, e2) twice, classes 0 and 1: anchor i's one positive is its other view
        // (s = 1/τ), its two other anchors have s = 0, so each term is −τ (1/τ − log(e^{1/τ} + 2)).
        let a = t(&[1.0, 0.0, 0.0, 1.0], 2);
        let y = Tensor::new(&[0u32, 1], &Device::Cpu)?;
        let tau: f64 = 0.2;
        let want = tau * ((1.0 / tau).exp() + 2.0).ln() - 1.0;
        assert!((scalar(sup_con(&a, &a, &y, tau)?) - want).abs() < 1e-12);
        // One class and zero rows: s = 0 everywhere, all three other anchors are positives and
        // each log-probability is −log 3.
        let z = t(&[0.0, 0.0, 0.0, 0.0], 2);
        let same = Tensor::new(&[4u32, 4], &Device::Cpu)?;
        let want = tau * 3f64.ln();
        assert!((scalar(sup_con(&z, &z, &same, tau)?) - want).abs() < 1e-12);
        // Against the definition on a generic case with a repeated class.
        let (a, b, _) = generic_views();
        let y = Tensor::new(&[2u32, 0, 2], &Device::Cpu)?;
        let rows: Vec<Vec<f64>> = [a.clone(), b.clone()]
            .iter()
            .flat_map(|v| v.to_vec2::<f64>().unwrap())
            .collect();
        let cls = [2, 0, 2, 2, 0, 2];
        let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(x, y)| x * y).sum::<f64>();
        let tau = 0.7;
        let mut total = 0.0;
        for i in 0..6 {
            let den: f64 = (0..6)
                .filter(|&k| k != i)
                .map(|k| (dot(&rows[i], &rows[k]) / tau).exp())
                .sum();
            let pos: Vec<usize> = (0..6).filter(|&k| k != i && cls[k] == cls[i]).collect();
            let mean: f64 = pos
                .iter()
                .map(|&p| dot(&rows[i], &rows[p]) / tau - den.ln())
                .sum::<f64>()
                / pos.len() as f64;
            total += -tau * mean;
        }
        let got = scalar(sup_con(&a, &b, &y, tau)?);
        assert_close(got, total / 6.0);
        Ok(())
    }

    #[test]
    fn both_losses_match_finite_differences_in_each_view() -> Result<()> {
        let (a, b, _) = generic_views();
        let y = Tensor::new(&[1u32, 0, 1], &Device::Cpu)?;
        for (name, e) in [
            ("nt_xent a", max_error(|x| nt_xent(x, &b, 0.2), &a, 1e-6)?),
            ("nt_xent b", max_error(|x| nt_xent(&a, x, 0.2), &b, 1e-6)?),
            (
                "sup_con a",
                max_error(|x| sup_con(x, &b, &y, 0.2), &a, 1e-6)?,
            ),
            (
                "sup_con b",
                max_error(|x| sup_con(&a, x, &y, 0.2), &b, 1e-6)?,
            ),
        ] {
            assert!(e < 1e-7, "{name}: {e}");
        }
        Ok(())
    }

    #[test]
    fn a_small_temperature_stays_finite() -> Result<()> {
        let a = t(&[30.0, -12.0, 20.0, 5.0], 2);
        let b = t(&[15.0, 2.0, -4.0, 10.0], 2);
        let y = Tensor::new(&[1u32, 0], &Device::Cpu)?;
        let a32 = a.to_dtype(DType::F32)?;
        let b32 = b.to_dtype(DType::F32)?;
        for v in [nt_xent(&a32, &b32, 1e-3)?, sup_con(&a32, &b32, &y, 1e-3)?] {
            let v = v.to_scalar::<f32>()?;
            assert!(v.is_finite(), "{v}");
        }
        Ok(())
    }
}
