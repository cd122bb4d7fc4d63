//! Gradient-reversal layer (Ganin & Lempitsky 2015): identity forward, −λ × gradient backward.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// The GRL schedule of DANN/CoDATS: λ(p) = 2 / (1 + exp(−10 p)) − 1 with p = step / (steps + 1).
pub fn grl_lambda(step: usize, total_steps: usize) -> f64 {
    let p = step as f64 / (total_steps as f64 + 1.0);
    2.0 / (1.0 + (-10.0 * p).exp()) - 1.0
}

/// Gradient reversal as a candle custom op; apply with [`GradReverse::apply`].
#[derive(Debug, Clone, Copy)]
pub struct GradReverse {
    /// The factor λ applied (negated) to the incoming gradient.
    pub lambda: f64,
}

impl GradReverse {
    /// Returns `x` unchanged in the forward pass; backward multiplies the gradient by −λ.
    pub fn apply(x: &Tensor, lambda: f64) -> Result<Tensor> {
        x.contiguous()?.apply_op1(GradReverse { lambda })
    }
}

impl CustomOp1 for GradReverse {
    fn name(&self) -> &'static str {
        "grad-reverse"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        // Copy the (possibly strided) input into a fresh contiguous buffer.
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(contiguous(v, layout)?),
            CpuStorage::F64(v) => CpuStorage::F64(contiguous(v, layout)?),
            _ => candle_core::bail!("grad-reverse: only f32/f64 are supported"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.affine(-self.lambda, 0.0)?))
    }
}

fn contiguous<T: Copy>(v: &[T], layout: &Layout) -> Result<Vec<T>> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(v[a..b].to_vec()),
        None => candle_core::bail!("grad-reverse: input must be contiguous"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn lambda_schedule_matches_the_paper() {
        assert_eq!(grl_lambda(0, 100), 0.0);
        // p = 50/101
        let p: f64 = 50.0 / 101.0;
        let want = 2.0 / (1.0 + (-10.0 * p).exp()) - 1.0;
        assert!((grl_lambda(50, 100) - want).abs() < 1e-15);
        assert!((grl_lambda(50, 100) - 0.985_939_74).abs() < 1e-8);
        assert!((grl_lambda(100, 100) - 0.999_899_75).abs() < 1e-8);
        // monotone increasing
        let mut prev = -1.0;
        for s in 0..=1000 {
            let l = grl_lambda(s, 1000);
            assert!(l > prev);
            prev = l;
        }
    }

    #[test]
    fn forward_is_identity_backward_is_minus_lambda() -> Result<()> {
        let x = Var::new(&[[1.0f32, -2.0, 3.5], [0.25, 0.0, -7.0]], &Device::Cpu)?;
        let y = GradReverse::apply(x.as_tensor(), 0.3)?;
        assert_eq!(y.to_vec2::<f32>()?, x.as_tensor().to_vec2::<f32>()?);
        // loss = sum(y * w) => dL/dy = w, dL/dx = -0.3 w
        let w = Tensor::new(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu)?;
        let loss = (y * &w)?.sum_all()?;
        let grads = loss.backward()?;
        let g = grads
            .get(x.as_tensor())
            .expect("gradient")
            .to_vec2::<f32>()?;
        let want = [[-0.3f32, -0.6, -0.9], [-1.2, -1.5, -1.8]];
        for (r, wr) in g.iter().zip(want.iter()) {
            for (a, b) in r.iter().zip(wr.iter()) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
        // transposed (strided) input still forwards exactly
        let t = x.as_tensor().t()?;
        let yt = GradReverse::apply(&t, 1.0)?;
        assert_eq!(yt.to_vec2::<f32>()?, t.to_vec2::<f32>()?);
        Ok(())
    }
}
