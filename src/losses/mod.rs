//! Loss functions as pure functions of tensors.
//!
//! Every function here back-propagates to its inputs through candle's own autograd (no
//! `*_no_bwd` custom op, no detached tensor, no host round trip on the way); each has a
//! finite-difference gradient check below, so a loss that stops reaching its inputs fails a test.

use candle_core::{Result, Tensor, D};

pub mod contrastive;
pub mod ssl;

/// Mean cross-entropy of `logits` `[B, K]` against class ids `targets` `[B]` (u32).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, targets)
}

/// Softmax over the last axis, differentiable.
///
/// candle-nn's `softmax_last_dim` is an `apply_op1_no_bwd` custom op: it has no backward, so
/// a loss built on it is logged but trains nothing (DA-WS did exactly that until this was
/// fixed). The maximum is subtracted for stability and detached: softmax does not depend on it.
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let e = logits.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Keras' clipping for probabilities inside KL divergence.
pub const KL_EPS: f64 = 1e-7;

/// DA-WS weak-supervision loss: KL(p_y ‖ q) with q = mean over the batch of softmax(`logits`).
///
/// Both distributions are clipped to [1e-7, 1] as Keras' `KLDivergence` does, so a class with
/// zero proportion contributes nothing and an empty prediction cannot give an infinite loss.
/// The gradient flows to `logits` (through [`softmax`]); `proportions` are constants.
pub fn weak_supervision_kl(proportions: &Tensor, logits: &Tensor) -> Result<Tensor> {
    let q = softmax(logits)?.mean(0)?;
    let p = proportions.to_dtype(logits.dtype())?.clamp(KL_EPS, 1.0)?;
    let q = q.clamp(KL_EPS, 1.0)?;
    (&p * (p.log()? - q.log()?)?)?.sum(D::Minus1)
}

/// Finite-difference gradient checks: the test support every loss in the crate is checked with.
pub mod gradcheck {
    use candle_core::{DType, Result, Tensor, Var};

    /// Largest difference between the autograd gradient of the scalar `f(x)` at `x` and its
    /// central finite difference (step `h`), relative to max(1, |finite difference|).
    ///
    /// `x` should be f64 so that the finite difference is accurate. Fails when no gradient
    /// reaches `x` at all (a `*_no_bwd` op or a detached tensor on the way).
    pub fn max_error<F>(f: F, x: &Tensor, h: f64) -> Result<f64>
    where
        F: Fn(&Tensor) -> Result<Tensor>,
    {
        let var = Var::from_tensor(x)?;
        let grads = f(var.as_tensor())?.backward()?;
        let analytic = grads
            .get(var.as_tensor())
            .ok_or_else(|| candle_core::Error::Msg("no gradient reaches the input".into()))?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let shape = x.shape().clone();
        let x0 = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let eval = |v: Vec<f64>| -> Result<f64> {
            let t = Tensor::from_vec(v, shape.clone(), x.device())?.to_dtype(x.dtype())?;
            f(&t)?.to_dtype(DType::F64)?.to_scalar::<f64>()
        };
        let mut worst = 0f64;
        for i in 0..x0.len() {
            let mut plus = x0.clone();
            plus[i] += h;
            let mut minus = x0.clone();
            minus[i] -= h;
            let numeric = (eval(plus)? - eval(minus)?) / (2.0 * h);
            worst = worst.max((analytic[i] - numeric).abs() / numeric.abs().max(1.0));
        }
        Ok(worst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    use super::gradcheck::max_error;
    use candle_core::DType;

    fn f64_tensor(v: &[f64], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    const LOGITS: [f64; 12] = [
        0.3, -1.2, 2.0, 0.5, 1.1, 0.0, -0.7, 0.9, -2.0, 1.5, 0.2, -0.4,
    ];

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() -> Result<()> {
        let x = f64_tensor(&LOGITS, (4, 3));
        let y = Tensor::new(&[2u32, 0, 1, 0], &Device::Cpu)?;
        let err = max_error(|l| cross_entropy(l, &y), &x, 1e-6)?;
        assert!(err < 1e-8, "cross-entropy gradient error {err}");
        Ok(())
    }

    #[test]
    fn softmax_gradient_matches_finite_differences() -> Result<()> {
        let x = f64_tensor(&LOGITS, (4, 3));
        let w = f64_tensor(
            &[
                1.0, -2.0, 0.5, 3.0, 0.1, -1.0, 2.0, 2.0, 0.0, -0.3, 0.7, 1.3,
            ],
            (4, 3),
        );
        let err = max_error(|l| (softmax(l)? * &w)?.sum_all(), &x, 1e-6)?;
        assert!(err < 1e-8, "softmax gradient error {err}");
        // Same values as candle-nn's (non-differentiable) softmax.
        let ours = softmax(&x)?.flatten_all()?.to_vec1::<f64>()?;
        let theirs = candle_nn::ops::softmax_last_dim(&x)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-12);
        }
        Ok(())
    }

    #[test]
    fn weak_supervision_kl_gradient_matches_finite_differences() -> Result<()> {
        let x = f64_tensor(&LOGITS, (4, 3));
        // A class with proportion 0: clipped to 1e-7, so it contributes (almost) nothing.
        for p in [[0.5, 0.3, 0.2], [0.0, 0.6, 0.4], [1.0, 0.0, 0.0]] {
            let p = Tensor::new(&p, &Device::Cpu)?;
            let err = max_error(|l| weak_supervision_kl(&p, l), &x, 1e-6)?;
            assert!(err < 1e-8, "DA-WS gradient error {err} for {p}");
        }
        Ok(())
    }

    #[test]
    fn weak_supervision_kl_gradient_is_zero_where_a_prediction_is_clipped() -> Result<()> {
        // Class 2 gets probability ~e^-40 << 1e-7 in both rows: q is clipped there, and the
        // clipped entry passes no gradient (Keras' clip does the same).
        let x = f64_tensor(&[0.0, 0.5, -40.0, 0.3, 0.0, -40.0], (2, 3));
        let p = Tensor::new(&[0.4f64, 0.3, 0.3], &Device::Cpu)?;
        let err = max_error(|l| weak_supervision_kl(&p, l), &x, 1e-6)?;
        assert!(err < 1e-8, "{err}");
        let var = candle_core::Var::from_tensor(&x)?;
        let g = weak_supervision_kl(&p, var.as_tensor())?.backward()?;
        let g = g.get(var.as_tensor()).expect("gradient").to_vec2::<f64>()?;
        assert!(g[0][2].abs() < 1e-12 && g[1][2].abs() < 1e-12, "{g:?}");
        assert!(
            g[0][0].abs() > 1e-3,
            "unclipped classes still get a gradient: {g:?}"
        );
        Ok(())
    }

    #[test]
    fn weak_supervision_kl_trains_in_f32() -> Result<()> {
        // The product trains in f32: the gradient must reach f32 logits too (it did not when
        // the batch-mean softmax came from candle-nn's softmax_last_dim).
        let x = f64_tensor(&LOGITS, (4, 3)).to_dtype(DType::F32)?;
        let p = Tensor::new(&[0.7f32, 0.2, 0.1], &Device::Cpu)?;
        let err = max_error(|l| weak_supervision_kl(&p, l), &x, 1e-2)?;
        assert!(err < 1e-3, "f32 DA-WS gradient error {err}");
        Ok(())
    }

    #[test]
    fn gradient_reversal_path_negates_and_scales_the_gradient() -> Result<()> {
        // Domain loss behind the GRL: CE(GRL_λ(f) · W). Autograd through the layer must give
        // −λ × the finite-difference gradient of the same loss without the layer.
        let f = f64_tensor(&LOGITS, (4, 3));
        let w = f64_tensor(&[0.2, -0.5, 1.0, 0.3, -0.1, 0.8], (3, 2));
        let y = Tensor::new(&[1u32, 0, 0, 1], &Device::Cpu)?;
        let lambda = 0.37;
        let plain = |x: &Tensor| cross_entropy(&x.matmul(&w)?, &y);
        let var = candle_core::Var::from_tensor(&f)?;
        let reversed = crate::nn::GradReverse::apply(var.as_tensor(), lambda)?;
        let grads = cross_entropy(&reversed.matmul(&w)?, &y)?.backward()?;
        let g = grads
            .get(var.as_tensor())
            .expect("gradient through the GRL");
        let g_plain = {
            let v = candle_core::Var::from_tensor(&f)?;
            let gr = plain(v.as_tensor())?.backward()?;
            gr.get(v.as_tensor()).expect("gradient").clone()
        };
        assert!(max_error(plain, &f, 1e-6)? < 1e-8);
        let want = g_plain
            .affine(-lambda, 0.0)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        for (a, b) in g.flatten_all()?.to_vec1::<f64>()?.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        Ok(())
    }

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
