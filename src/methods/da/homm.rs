//! HoMM (Chen et al., "HoMM: Higher-order Moment Matching for Unsupervised Domain Adaptation",
//! AAAI 2020), order 3: source cross-entropy plus the mean squared difference between the
//! source and target third-order moment tensors of the centred features,
//! (1/F³) ‖M_s − M_t‖²_F with M = (1/n) Σ_i c_i ⊗ c_i ⊗ c_i (AdaTime's `HoMM_loss`).
//!
//! The F³ tensor (2 M entries for F = 128) is never formed: ⟨M_a, M_b⟩ = mean_ij ⟨a_i, b_j⟩³,
//! so ‖M_s − M_t‖² = mean (C_s C_sᵀ)³ + mean (C_t C_tᵀ)³ − 2 mean (C_s C_tᵀ)³ (element-wise
//! cubes of the Gram matrices). This is the exact full-tensor distance, not HoMM's random
//! sampling of tensor entries, at the cost of three n × n Gram matrices.

use crate::methods::Task;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::align::Aligned;
use crate::data::batch::BatchDivision;
use crate::methods::{DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param};

/// HoMM's registry entry.
pub const HOMM: MethodInfo = MethodInfo {
    name: "homm",
    aliases: &[],
    label: "HoMM",
    help: "HoMM: source cross-entropy + distance between source and target third-order feature moments",
    color: (240, 228, 66),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[Param {
        name: "homm_weight",
        default: 9.13 / 2.15,
        min: 0.0,
        max: 1e9,
        help: "weight of the third-order moment distance (AdaTime HAR: 9.13 against a task weight of 2.15)",
    }],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Aligned::new(
        kind,
        setup,
        vb,
        homm3,
        "homm_weight",
        "homm_loss",
    )?))
}

/// Rows of `x` `[n, d]` less their mean.
fn centred(x: &Tensor) -> Result<Tensor> {
    x.broadcast_sub(&x.mean_keepdim(0)?)
}

/// mean over i, j of ⟨a_i, b_j⟩³: the inner product of the third-moment tensors of `a` and `b`.
fn cubed_gram_mean(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let g = a.matmul(&b.t()?)?;
    (&g * &g)?.mul(&g)?.mean_all()
}

/// HoMM's order-3 loss between source features `[n_s, d]` and target features `[n_t, d]`:
/// the mean over the d³ entries of (M_s − M_t)², each domain centred by its own mean.
pub fn homm3(source: &Tensor, target: &Tensor) -> Result<Tensor> {
    let d = source.dim(1)? as f64;
    let (cs, ct) = (centred(source)?, centred(target)?);
    let ss = cubed_gram_mean(&cs, &cs)?;
    let tt = cubed_gram_mean(&ct, &ct)?;
    let st = cubed_gram_mean(&cs, &ct)?;
    (ss + tt)?
        .sub(&st.affine(2.0, 0.0)?)?
        .affine(1.0 / (d * d * d), 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;

    fn t(v: &[f64], rows: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (rows, v.len() / rows), &Device::Cpu).unwrap()
    }

    /// The loss as AdaTime writes it: the full d³ moment tensors, entry by entry.
    fn full_tensor(source: &[Vec<f64>], target: &[Vec<f64>]) -> f64 {
        let moment = |x: &[Vec<f64>]| {
            let d = x[0].len();
            let mean: Vec<f64> = (0..d)
                .map(|k| x.iter().map(|r| r[k]).sum::<f64>() / x.len() as f64)
                .collect();
            let c: Vec<Vec<f64>> = x
                .iter()
                .map(|r| r.iter().zip(&mean).map(|(a, m)| a - m).collect())
                .collect();
            let mut m = vec![0.0; d * d * d];
            for r in &c {
                for i in 0..d {
                    for j in 0..d {
                        for k in 0..d {
                            m[(i * d + j) * d + k] += r[i] * r[j] * r[k] / x.len() as f64;
                        }
                    }
                }
            }
            m
        };
        let (ms, mt) = (moment(source), moment(target));
        ms.iter()
            .zip(&mt)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / ms.len() as f64
    }

    #[test]
    fn homm3_matches_a_hand_computation_and_the_full_tensor() -> Result<()> {
        // d = 1: source {0, 2} → centred {−1, 1}, third moment 0; target {0, 0, 3} → mean 1,
        // centred {−1, −1, 2}, third moment (−1 − 1 + 8) / 3 = 2. Loss (0 − 2)² / 1³ = 4.
        let got = homm3(&t(&[0.0, 2.0], 2), &t(&[0.0, 0.0, 3.0], 3))?.to_scalar::<f64>()?;
        assert!((got - 4.0).abs() < 1e-12, "{got}");
        // d = 3 against the d³ tensor built entry by entry.
        let s = [1.0, 2.0, 0.5, 3.0, 0.0, -1.0, 0.0, 1.0, 2.5, -0.4, 0.8, 1.1];
        let tg = [
            0.0, 0.3, 0.0, 2.0, 2.0, 1.0, 1.0, -1.0, 0.2, 1.0, 1.0, 0.7, 0.5, 0.5, -2.0,
        ];
        let rows = |v: &[f64]| v.chunks(3).map(|c| c.to_vec()).collect::<Vec<_>>();
        let want = full_tensor(&rows(&s), &rows(&tg));
        let got = homm3(&t(&s, 4), &t(&tg, 5))?.to_scalar::<f64>()?;
        assert!(
            (got - want).abs() < 1e-12 * want.max(1.0),
            "{got} vs {want}"
        );
        assert!(want > 0.01, "a non-trivial case: {want}");
        // Equal sets, and a shift (centring removes it), give zero.
        let fs = t(&s, 4);
        assert!(homm3(&fs, &fs)?.to_scalar::<f64>()?.abs() < 1e-12);
        let shifted = (&fs + 5.0)?;
        assert!(homm3(&fs, &shifted)?.to_scalar::<f64>()?.abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn homm3_gradient_matches_finite_differences() -> Result<()> {
        let fs = t(&[1.0, 2.0, 0.5, 3.0, 0.0, -1.0, 0.0, 1.0, 2.5], 3);
        let ft = t(
            &[0.0, 0.3, 0.0, 2.0, 2.0, 1.0, 1.0, -1.0, 0.2, 1.0, 1.0, 0.7],
            4,
        );
        assert!(max_error(|x| homm3(x, &ft), &fs, 1e-6)? < 1e-8);
        assert!(max_error(|x| homm3(&fs, x), &ft, 1e-6)? < 1e-8);
        Ok(())
    }
}
