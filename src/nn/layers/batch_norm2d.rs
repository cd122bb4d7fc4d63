//! Batch normalisation over every axis but the channel one (`[B, C, H, W]` or `[B, C, T]`), with
//! the three [`Mode`]s and PyTorch's running-statistics rule.

use candle_core::{Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::nn::Mode;

/// ε of the image backbones' batch norms (the PyTorch anchor's and USB's `eps=1e-3`).
pub const SSL_BN_EPS: f64 = 1e-3;
/// Running-statistics momentum of the image backbones, in PyTorch terms:
/// `running = (1 − 0.001)·running + 0.001·batch`.
pub const SSL_BN_MOMENTUM: f64 = 0.001;

/// Batch norm with parameters `weight` (γ, init 1), `bias` (β, init 0) and the running
/// statistics `running_mean` (init 0), `running_var` (init 1) under its `VarBuilder` prefix.
///
/// Training normalises with the batch mean and *biased* variance; the running variance moves
/// towards the *unbiased* batch variance (`var·n/(n−1)`, `n` = values per channel), as PyTorch's
/// `BatchNorm2d` does.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    /// Creates (or loads) the variables of a batch norm over `channels` channels under `vb`.
    pub fn new(channels: usize, eps: f64, momentum: f64, vb: VarBuilder) -> Result<Self> {
        let running_mean =
            Var::from_tensor(&vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?)?;
        let running_var =
            Var::from_tensor(&vb.get_with_hints(channels, "running_var", Init::Const(1.0))?)?;
        Ok(Self {
            gamma: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            beta: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            running_mean,
            running_var,
            eps,
            momentum,
        })
    }

    /// The same layer with running-statistics momentum `momentum` (PyTorch terms).
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// γ and β.
    pub fn affine(&self) -> (&Tensor, &Tensor) {
        (&self.gamma, &self.beta)
    }

    /// The ε added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The running mean and variance, as f64 vectors.
    pub fn running_stats(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let to64 = |v: &Var| -> Result<Vec<f64>> {
            Ok(v.as_tensor()
                .to_vec1::<f32>()?
                .into_iter()
                .map(f64::from)
                .collect())
        };
        Ok((to64(&self.running_mean)?, to64(&self.running_var)?))
    }

    /// Moves the running statistics towards a batch's mean and *biased* variance over `n`
    /// values per channel (the variance enters unbiased, `·n/(n−1)`, as in PyTorch).
    pub fn update_running(&self, mean: &[f64], var: &[f64], n: usize) -> Result<()> {
        let (rm, rv) = self.running_stats()?;
        let m = self.momentum;
        let unbias = if n > 1 {
            n as f64 / (n as f64 - 1.0)
        } else {
            1.0
        };
        let rm: Vec<f32> = rm
            .iter()
            .zip(mean)
            .map(|(r, b)| (r * (1.0 - m) + b * m) as f32)
            .collect();
        let rv: Vec<f32> = rv
            .iter()
            .zip(var)
            .map(|(r, b)| (r * (1.0 - m) + b * unbias * m) as f32)
            .collect();
        let dev = self.running_mean.device();
        self.running_mean.set(&Tensor::new(rm, dev)?)?;
        self.running_var.set(&Tensor::new(rv, dev)?)
    }

    /// Normalised `x` `[B, C, …]` in `mode` (see [`Mode`]); same shape.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        let x3 = x.reshape((b, c, ()))?;
        let (centred, inv) = if mode.batch_stats() {
            let mean = x3.mean_keepdim(2)?.mean_keepdim(0)?;
            let centred = x3.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
            if mode == Mode::Train {
                let to64 = |t: &Tensor| -> Result<Vec<f64>> {
                    Ok(t.flatten_all()?
                        .to_vec1::<f32>()?
                        .into_iter()
                        .map(f64::from)
                        .collect())
                };
                self.update_running(&to64(&mean)?, &to64(&var)?, b * x3.dim(2)?)?;
            }
            (centred, (var + self.eps)?.sqrt()?.recip()?)
        } else {
            let mean = self.running_mean.as_detached_tensor().reshape((1, c, 1))?;
            let var = self.running_var.as_detached_tensor().reshape((1, c, 1))?;
            (x3.broadcast_sub(&mean)?, (var + self.eps)?.sqrt()?.recip()?)
        };
        centred
            .broadcast_mul(&inv)?
            .broadcast_mul(&self.gamma.reshape((1, c, 1))?)?
            .broadcast_add(&self.beta.reshape((1, c, 1))?)?
            .reshape(x.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::super::test_values as values;

    #[test]
    fn batch_statistics_forward_has_the_right_input_gradient() -> Result<()> {
        // f64, batch statistics without the running update (which reads f32 values).
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let bn = BatchNorm2d::new(3, 1e-3, 0.001, vb)?;
        let shape = (2, 3, 2, 2);
        let x = Tensor::from_vec(values(24, 1), shape, &Device::Cpu)?;
        let w = Tensor::from_vec(values(24, 7), shape, &Device::Cpu)?;
        // A weighted sum: the plain sum of a normalised output does not depend on x.
        let loss = |v: &Tensor| (bn.forward(v, Mode::TrainKeepStats)? * &w)?.sum_all();
        let err = max_error(loss, &x, 1e-6)?;
        assert!(err < 1e-6, "batch-norm input gradient: error {err}");
        // Normalised per channel: mean 0 over batch and space.
        let y = bn.forward(&x, Mode::TrainKeepStats)?;
        let m = y.transpose(0, 1)?.flatten_from(1)?.mean_keepdim(1)?;
        for v in m.flatten_all()?.to_vec1::<f64>()? {
            assert!(v.abs() < 1e-12, "channel mean {v}");
        }
        Ok(())
    }
}
