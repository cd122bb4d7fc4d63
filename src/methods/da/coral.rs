//! Deep CORAL (Sun & Saenko, ECCV 2016 workshops): source cross-entropy plus the distance
//! between the source and target feature covariances, ‖C_s − C_t‖²_F / (4 d²).

use crate::methods::Task;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::align::Aligned;
use crate::data::batch::BatchDivision;
use crate::methods::{DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param};

/// Deep CORAL's registry entry.
pub const CORAL: MethodInfo = MethodInfo {
    name: "coral",
    aliases: &["deep_coral"],
    label: "Deep CORAL",
    help:
        "Deep CORAL: source cross-entropy + distance between source and target feature covariances",
    color: (86, 180, 233),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[Param {
        name: "coral_weight",
        default: 1.0,
        min: 0.0,
        max: 1e6,
        help: "weight of the CORAL loss (the paper's λ; 1 balances it against the task loss)",
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
        coral,
        "coral_weight",
        "coral_loss",
    )?))
}

/// Unbiased covariance `[d, d]` of the rows of `x` `[n, d]` (n ≥ 2).
fn covariance(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    if n < 2 {
        candle_core::bail!("CORAL needs at least 2 rows per domain (got {n})");
    }
    let centred = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    centred
        .t()?
        .matmul(&centred)?
        .affine(1.0 / (n as f64 - 1.0), 0.0)
}

/// The CORAL loss between source features `[n_s, d]` and target features `[n_t, d]`:
/// ‖C_s − C_t‖²_F / (4 d²) with unbiased covariances.
pub fn coral(source: &Tensor, target: &Tensor) -> Result<Tensor> {
    let d = source.dim(1)? as f64;
    (covariance(source)? - covariance(target)?)?
        .sqr()?
        .sum_all()?
        .affine(1.0 / (4.0 * d * d), 0.0)
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
    fn coral_matches_a_hand_computation() -> Result<()> {
        // C_s = [[7/3, -1], [-1, 1]], C_t = [[2/3, 2/3], [2/3, 5/3]] (n - 1 denominators);
        // ‖C_s − C_t‖² = 3·25/9 + 4/9 = 79/9, / (4·2²) = 79/144.
        let fs = t(&[1.0, 2.0, 3.0, 0.0, 0.0, 1.0], 3);
        let ft = t(&[0.0, 0.0, 2.0, 2.0, 1.0, -1.0, 1.0, 1.0], 4);
        let got = coral(&fs, &ft)?.to_scalar::<f64>()?;
        assert!((got - 79.0 / 144.0).abs() < 1e-12, "{got}");
        assert_eq!(coral(&fs, &fs)?.to_scalar::<f64>()?, 0.0);
        Ok(())
    }

    #[test]
    fn coral_gradient_matches_finite_differences() -> Result<()> {
        let fs = t(&[1.0, 2.0, 0.5, 3.0, 0.0, -1.0, 0.0, 1.0, 2.5], 3);
        let ft = t(
            &[0.0, 0.3, 0.0, 2.0, 2.0, 1.0, 1.0, -1.0, 0.2, 1.0, 1.0, 0.7],
            4,
        );
        assert!(max_error(|x| coral(x, &ft), &fs, 1e-6)? < 1e-8);
        assert!(max_error(|x| coral(&fs, x), &ft, 1e-6)? < 1e-8);
        Ok(())
    }

    #[test]
    fn coral_needs_two_rows() {
        let one = t(&[1.0, 2.0], 1);
        let err = coral(&one, &one).unwrap_err().to_string();
        assert!(
            err.contains("CORAL needs at least 2 rows per domain (got 1)"),
            "{err}"
        );
    }
}
