//! Loss functions as pure functions of tensors.

use candle_core::{DType, Result, Tensor, D};

/// Mean cross-entropy of `logits` `[B, K]` against class ids `targets` `[B]` (u32).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, targets)
}

/// Keras' clipping for probabilities inside KL divergence.
pub const KL_EPS: f64 = 1e-7;

/// DA-WS weak-supervision loss: KL(p_y ‖ q) with q = mean over the batch of softmax(`logits`).
///
/// Both distributions are clipped to [1e-7, 1] as Keras' `KLDivergence` does, so a class with
/// zero proportion contributes nothing and an empty prediction cannot give an infinite loss.
pub fn weak_supervision_kl(proportions: &Tensor, logits: &Tensor) -> Result<Tensor> {
    let q = candle_nn::ops::softmax_last_dim(logits)?.mean(0)?;
    let p = proportions.to_dtype(DType::F32)?.clamp(KL_EPS, 1.0)?;
    let q = q.clamp(KL_EPS, 1.0)?;
    (&p * (p.log()? - q.log()?)?)?.sum(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weak_supervision_kl_matches_hand_computation() -> Result<()> {
        let dev = Device::Cpu;
        // Two target rows, three classes.
        let logits = Tensor::new(&[[0.0f32, 1.0, 2.0], [1.0, 0.0, 0.0]], &dev)?;
        let p = Tensor::new(&[0.5f32, 0.25, 0.25], &dev)?;
        // softmax rows by hand
        let e = |v: [f64; 3]| {
            let s: f64 = v.iter().map(|x| x.exp()).sum();
            [v[0].exp() / s, v[1].exp() / s, v[2].exp() / s]
        };
        let a = e([0.0, 1.0, 2.0]);
        let b = e([1.0, 0.0, 0.0]);
        let q = [
            (a[0] + b[0]) / 2.0,
            (a[1] + b[1]) / 2.0,
            (a[2] + b[2]) / 2.0,
        ];
        let pv = [0.5, 0.25, 0.25];
        let want: f64 = (0..3).map(|i| pv[i] * (pv[i] / q[i]).ln()).sum();
        let got = weak_supervision_kl(&p, &logits)?.to_scalar::<f32>()? as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // independently computed with Python's math module: q = (0.33307, 0.22834, 0.43859)
        assert!((got - 0.085_257_12).abs() < 1e-6, "{got}");
        Ok(())
    }

    #[test]
    fn weak_supervision_kl_is_zero_when_prediction_matches() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[0.5f32, 0.5f32.ln() + 0.5]], &dev)?; // softmax = (2/3, 1/3)
        let p = Tensor::new(&[2.0f32 / 3.0, 1.0 / 3.0], &dev)?;
        let got = weak_supervision_kl(&p, &logits)?.to_scalar::<f32>()?;
        assert!(got.abs() < 1e-6, "{got}");
        Ok(())
    }
}
