//! Gated Channel Transformation (Yang et al., "Gated Channel Transformation for Visual
//! Recognition", CVPR 2020): a per-channel gate computed from the channel's ℓ2 norm, normalised
//! across channels.
//!
//! For `x` `[B, C, …]` (sequences `[B, C, T]` or images `[B, C, H, W]`):
//! `s = α·sqrt(Σ_space x² + ε)` per (sample, channel), `n = γ / sqrt(mean_c(s²) + ε)`,
//! `y = x·(1 + tanh(s·n + β))`. With γ = β = 0 (their initial values) the gate is exactly 1, so a
//! freshly built layer is the identity and can be put in front of any convolution.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// The ε inside both square roots.
pub const GCT_EPS: f64 = 1e-5;

/// A GCT layer with parameters α (init 1), γ (init 0) and β (init 0), each `[C]`, named
/// `alpha`, `gamma`, `beta` under the layer's `VarBuilder` prefix.
#[derive(Debug, Clone)]
pub struct Gct {
    alpha: Tensor,
    gamma: Tensor,
    beta: Tensor,
}

impl Gct {
    /// Creates (or loads) the layer's variables for `channels` channels under `vb`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            alpha: vb.get_with_hints(channels, "alpha", Init::Const(1.0))?,
            gamma: vb.get_with_hints(channels, "gamma", Init::Const(0.0))?,
            beta: vb.get_with_hints(channels, "beta", Init::Const(0.0))?,
        })
    }

    /// A layer over given parameter tensors `[C]` (gradient checks, loaded weights).
    pub fn from_params(alpha: Tensor, gamma: Tensor, beta: Tensor) -> Self {
        Self { alpha, gamma, beta }
    }

    /// Gated `x` `[B, C, …]` (any number of trailing space/time axes), same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        if self.alpha.dim(0)? != c {
            candle_core::bail!(
                "gct: input has {c} channels, layer has {}",
                self.alpha.dim(0)?
            );
        }
        let x3 = x.reshape((b, c, ()))?;
        let norm = (x3.sqr()?.sum(2)? + GCT_EPS)?.sqrt()?;
        let s = norm.broadcast_mul(&self.alpha.reshape((1, c))?)?;
        let spread = (s.sqr()?.mean_keepdim(1)? + GCT_EPS)?.sqrt()?;
        let n = self.gamma.reshape((1, c))?.broadcast_div(&spread)?;
        let gate = ((s * n)?
            .broadcast_add(&self.beta.reshape((1, c))?)?
            .tanh()?
            + 1.0)?;
        x3.broadcast_mul(&gate.unsqueeze(2)?)?.reshape(x.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::super::test_values as values;

    fn t(v: Vec<f64>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    #[test]
    fn a_new_layer_is_exactly_the_identity() -> Result<()> {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let gct = Gct::new(3, vb.pp("gct"))?;
        for shape in [vec![2, 3, 5], vec![2, 3, 4, 4]] {
            let n = shape.iter().product();
            let x = t(values(n, 7), &shape).to_dtype(DType::F32)?;
            let y = gct.forward(&x)?;
            let (xv, yv) = (
                x.flatten_all()?.to_vec1::<f32>()?,
                y.flatten_all()?.to_vec1::<f32>()?,
            );
            assert!(xv.iter().zip(&yv).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        Ok(())
    }

    #[test]
    fn one_value_computed_by_hand() -> Result<()> {
        // x [1, 2, 1, 2]: channel 0 = (3, 4), channel 1 = (1, 0); s = (0.5·√25, 2·√1) (+ε),
        // n = γ/√((6.25 + 4)/2), y = x·(1 + tanh(s·n + β)), evaluated in f64 by hand.
        let x = t(vec![3.0, 4.0, 1.0, 0.0], &[1, 2, 1, 2]);
        let gct = Gct::from_params(
            t(vec![0.5, 2.0], &[2]),
            t(vec![1.5, -1.0], &[2]),
            t(vec![0.1, 0.2], &[2]),
        );
        let y = gct.forward(&x)?.flatten_all()?.to_vec1::<f64>()?;
        let want = [5.826321687833016, 7.768428917110688, 0.406239773602957, 0.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let x = t(values(2 * 3 * 2 * 3, 1), &[2, 3, 2, 3]);
        let w = t(values(2 * 3 * 2 * 3, 2), &[2, 3, 2, 3]);
        let alpha = t(vec![0.8, 1.3, -0.6], &[3]);
        let gamma = t(vec![0.7, -1.1, 0.4], &[3]);
        let beta = t(vec![0.2, -0.3, 0.5], &[3]);
        let loss = |x: &Tensor, a: &Tensor, g: &Tensor, b: &Tensor| {
            let y = Gct::from_params(a.clone(), g.clone(), b.clone()).forward(x)?;
            (y * &w)?.sum_all()
        };
        let errs = [
            max_error(|v| loss(v, &alpha, &gamma, &beta), &x, 1e-6)?,
            max_error(|v| loss(&x, v, &gamma, &beta), &alpha, 1e-6)?,
            max_error(|v| loss(&x, &alpha, v, &beta), &gamma, 1e-6)?,
            max_error(|v| loss(&x, &alpha, &gamma, v), &beta, 1e-6)?,
        ];
        for (name, e) in ["x", "alpha", "gamma", "beta"].iter().zip(errs) {
            assert!(e < 1e-7, "gct gradient w.r.t. {name}: error {e}");
        }
        Ok(())
    }
}
