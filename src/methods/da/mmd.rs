//! DDC-style MMD (Tzeng et al. 2014; multi-kernel as in DAN, Long et al. 2015): source
//! cross-entropy plus the squared maximum mean discrepancy between source and target features
//! under a sum of Gaussian kernels whose bandwidths come from the median heuristic.

use crate::methods::Task;
use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use super::align::Aligned;
use crate::data::batch::BatchDivision;
use crate::methods::{DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param};

/// MMD's registry entry.
pub const MMD: MethodInfo = MethodInfo {
    name: "mmd",
    aliases: &["ddc"],
    label: "MMD (DDC)",
    help: "DDC-style MMD: source cross-entropy + multi-kernel Gaussian MMD between source and target features",
    color: (213, 94, 0),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[Param {
        name: "mmd_weight",
        default: 1.0,
        min: 0.0,
        max: 1e6,
        help: "weight of the MMD loss (DDC's λ)",
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
        mmd,
        "mmd_weight",
        "mmd_loss",
    )?))
}

/// Kernel bandwidths as multiples of the median squared distance (DAN's 2^k, k = −2..2).
pub const BANDWIDTH_SCALES: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// Squared Euclidean distances `[n, n]` between the rows of `x` `[n, d]`.
pub fn squared_distances(x: &Tensor) -> Result<Tensor> {
    let sq = x.sqr()?.sum_keepdim(D::Minus1)?; // [n, 1]
    let cross = x.matmul(&x.t()?)?;
    // Rounding can make a distance slightly negative: clip at zero.
    sq.broadcast_add(&sq.t()?)?
        .sub(&cross.affine(2.0, 0.0)?)?
        .relu()
}

/// The median heuristic: the median of the off-diagonal squared distances (computed on the
/// detached values, so the bandwidth is a constant of the step, as DAN's implementations treat
/// it); 1 when all points coincide.
pub fn median_bandwidth(d2: &Tensor) -> Result<f64> {
    let n = d2.dim(0)?;
    let rows = d2
        .detach()
        .to_dtype(candle_core::DType::F64)?
        .to_vec2::<f64>()?;
    let mut off: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| rows[i][j])
        .collect();
    if off.is_empty() {
        return Ok(1.0);
    }
    off.sort_by(f64::total_cmp);
    let m = off.len();
    let median = if m % 2 == 1 {
        off[m / 2]
    } else {
        0.5 * (off[m / 2 - 1] + off[m / 2])
    };
    Ok(if median > 0.0 { median } else { 1.0 })
}

/// Biased (V-statistic) squared MMD between `source` `[n_s, d]` and `target` `[n_t, d]` with
/// k(a, b) = mean over s in [`BANDWIDTH_SCALES`] of exp(−‖a − b‖² / (2 · s · `sigma2`)).
pub fn mmd_with_bandwidth(source: &Tensor, target: &Tensor, sigma2: f64) -> Result<Tensor> {
    let d2 = squared_distances(&Tensor::cat(&[source, target], 0)?)?;
    mmd_of_distances(&d2, source.dim(0)?, target.dim(0)?, sigma2)
}

/// MMD² from the pooled squared distances `d2` (`ns` source rows, then `nt` target rows).
fn mmd_of_distances(d2: &Tensor, ns: usize, nt: usize, sigma2: f64) -> Result<Tensor> {
    let k = multi_kernel(d2, sigma2)?;
    let kss = k.narrow(0, 0, ns)?.narrow(1, 0, ns)?.mean_all()?;
    let ktt = k.narrow(0, ns, nt)?.narrow(1, ns, nt)?.mean_all()?;
    let kst = k.narrow(0, 0, ns)?.narrow(1, ns, nt)?.mean_all()?;
    (kss + ktt)?.sub(&kst.affine(2.0, 0.0)?)
}

/// The kernel matrix of squared distances `d2`: mean over s in [`BANDWIDTH_SCALES`] of
/// exp(−d2 / (2 · s · `sigma2`)) (shared with DSAN's local MMD).
pub fn multi_kernel(d2: &Tensor, sigma2: f64) -> Result<Tensor> {
    let mut k: Option<Tensor> = None;
    for s in BANDWIDTH_SCALES {
        let ks = d2.affine(-1.0 / (2.0 * s * sigma2), 0.0)?.exp()?;
        k = Some(match k {
            None => ks,
            Some(acc) => (acc + ks)?,
        });
    }
    k.expect("at least one bandwidth")
        .affine(1.0 / BANDWIDTH_SCALES.len() as f64, 0.0)
}

/// Multi-kernel MMD² with the bandwidth from the median heuristic on the pooled features.
pub fn mmd(source: &Tensor, target: &Tensor) -> Result<Tensor> {
    // The pooled distances serve both the bandwidth and the kernels: computed once.
    let d2 = squared_distances(&Tensor::cat(&[source, target], 0)?)?;
    let sigma2 = median_bandwidth(&d2)?;
    mmd_of_distances(&d2, source.dim(0)?, target.dim(0)?, sigma2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;

    fn t(v: &[f64], rows: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (rows, v.len() / rows), &Device::Cpu).unwrap()
    }

    #[test]
    fn median_heuristic_and_mmd_match_a_hand_computation() -> Result<()> {
        // Source {0, 1}, target {3} in one dimension: off-diagonal squared distances
        // 1, 1, 4, 4, 9, 9 -> median (4 + 4) / 2 = 4.
        let (fs, ft) = (t(&[0.0, 1.0], 2), t(&[3.0], 1));
        let pooled = Tensor::cat(&[&fs, &ft], 0)?;
        assert_eq!(median_bandwidth(&squared_distances(&pooled)?)?, 4.0);
        // With k(a,b) = mean_s exp(-(a-b)^2 / (8 s)), s in {1/4, 1/2, 1, 2, 4}:
        // MMD^2 = mean K_ss + K_tt - 2 mean K_st, computed with Python's math module.
        let got = mmd(&fs, &ft)?.to_scalar::<f64>()?;
        assert!((got - 1.010_282_227_274_830_2).abs() < 1e-12, "{got}");
        assert!(mmd(&fs, &fs)?.to_scalar::<f64>()?.abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn mmd_gradient_matches_finite_differences() -> Result<()> {
        // The bandwidth is a constant of the step (detached), so check at a fixed bandwidth.
        let fs = t(&[1.0, 2.0, 0.5, 3.0, 0.0, -1.0, 0.0, 1.0, 2.5], 3);
        let ft = t(
            &[0.0, 0.3, 0.0, 2.0, 2.0, 1.0, 1.0, -1.0, 0.2, 1.0, 1.0, 0.7],
            4,
        );
        let s2 = median_bandwidth(&squared_distances(&Tensor::cat(&[&fs, &ft], 0)?)?)?;
        assert!(max_error(|x| mmd_with_bandwidth(x, &ft, s2), &fs, 1e-6)? < 1e-8);
        assert!(max_error(|x| mmd_with_bandwidth(&fs, x, s2), &ft, 1e-6)? < 1e-8);
        // And the median-heuristic loss passes its gradient to both feature sets.
        let v = candle_core::Var::from_tensor(&fs)?;
        let g = mmd(v.as_tensor(), &ft)?.backward()?;
        let g = g
            .get(v.as_tensor())
            .expect("gradient reaches the source features");
        assert!(g.sqr()?.sum_all()?.to_scalar::<f64>()? > 0.0);
        Ok(())
    }
}
