//! A one-layer GRU over the time steps of a window, its last hidden state as the features: the
//! recurrent feature extractor of R-DANN (Purushotham et al. 2017, the CoDATS paper's RNN
//! baseline). PyTorch's GRU equations, with `x_t` the `C` channels at step `t`:
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)     z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))     h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! Written from candle ops rather than `candle_nn::rnn::GRU`, whose variables are initialised
//! from candle's unseedable RNG: here `ih.weight` `[3H, C]` and `hh.weight` `[3H, H]` (gate order
//! r, z, n) take the run's seeded Glorot initialisation and the biases start at zero.

use candle_core::{Result, Tensor, D};
use candle_nn::{Init, Linear, Module, VarBuilder};

use crate::nn::backbone::Mode;

/// Hidden units (the width of the features).
pub const GRU_HIDDEN: usize = 100;

/// The GRU feature extractor. Parameter names: `ih.weight`, `ih.bias`, `hh.weight`, `hh.bias`.
#[derive(Debug, Clone)]
pub struct GruEncoder {
    ih: Linear,
    hh: Linear,
    hidden: usize,
}

fn linear(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((c_out, c_in), "weight", Init::Const(0.0))?;
    let b = vb.get_with_hints(c_out, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

impl GruEncoder {
    /// Builds a GRU over `channels` inputs with `hidden` units under `vb`.
    pub fn new(channels: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ih: linear(channels, 3 * hidden, vb.pp("ih"))?,
            hh: linear(hidden, 3 * hidden, vb.pp("hh"))?,
            hidden,
        })
    }

    /// Width of the feature vector.
    pub fn feature_dim(&self) -> usize {
        self.hidden
    }

    /// `[B, C, T]` → the last hidden state `[B, H]` (no batch statistics: every mode is the same
    /// computation; evaluation is detached).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let x = if mode == Mode::Eval {
            x.detach()
        } else {
            x.clone()
        };
        let (b, _c, t) = x.dims3()?;
        let hdim = self.hidden;
        // All steps' input projections in one matmul: [B, T, C] → [B, T, 3H].
        let gx = self.ih.forward(&x.transpose(1, 2)?.contiguous()?)?;
        let mut h = Tensor::zeros((b, hdim), x.dtype(), x.device())?;
        for step in 0..t {
            let gi = gx.narrow(1, step, 1)?.squeeze(1)?;
            let gh = self.hh.forward(&h)?;
            let rz = candle_nn::ops::sigmoid(
                &(gi.narrow(D::Minus1, 0, 2 * hdim)? + gh.narrow(D::Minus1, 0, 2 * hdim)?)?,
            )?;
            let r = rz.narrow(D::Minus1, 0, hdim)?;
            let z = rz.narrow(D::Minus1, hdim, hdim)?;
            let n = (gi.narrow(D::Minus1, 2 * hdim, hdim)?
                + (r * gh.narrow(D::Minus1, 2 * hdim, hdim)?)?)?
            .tanh()?;
            // h' = n + z ⊙ (h − n)
            h = (&n + (z * (h - &n)?)?)?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// One step, one unit, one channel, by hand: with weights w_ir = 1, w_iz = 2, w_in = 3,
    /// w_hr = w_hz = w_hn = 0.5, zero biases, x = [1, −1] and h_0 = 0.
    #[test]
    fn two_steps_match_the_equations_by_hand() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let gru = GruEncoder::new(1, 1, vb).unwrap();
        {
            let data = vm.data().lock().unwrap();
            data["ih.weight"]
                .set(&Tensor::new(&[[1f64], [2.], [3.]], &Device::Cpu).unwrap())
                .unwrap();
            data["hh.weight"]
                .set(&Tensor::new(&[[0.5f64], [0.5], [0.5]], &Device::Cpu).unwrap())
                .unwrap();
        }
        let x = Tensor::new(&[[[1f64, -1.]]], &Device::Cpu).unwrap();
        let h: f64 = gru
            .forward(&x, Mode::Eval)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0];
        let s = |v: f64| 1.0 / (1.0 + (-v).exp());
        // Step 1: h0 = 0 → r = σ(1), z = σ(2), n = tanh(3), h1 = (1 − z)·n.
        let h1 = (1.0 - s(2.0)) * 3f64.tanh();
        // Step 2: x = −1.
        let r = s(-1.0 + 0.5 * h1);
        let z = s(-2.0 + 0.5 * h1);
        let n = (-3.0 + r * 0.5 * h1).tanh();
        let h2 = (1.0 - z) * n + z * h1;
        assert!((h - h2).abs() < 1e-12, "{h} vs {h2}");
    }

    #[test]
    fn gradients_through_time_match_finite_differences() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let gru = GruEncoder::new(2, 3, vb).unwrap();
        crate::nn::glorot_init(&vm, 4).unwrap();
        let x = Tensor::randn(0f64, 1., (2, 2, 6), &Device::Cpu).unwrap();
        // A weighted sum of the last hidden state, so every unit's gradient counts.
        let w = Tensor::new(&[[0.3f64, -1.1, 0.7]], &Device::Cpu).unwrap();
        let f = |x: &Tensor| gru.forward(x, Mode::Train)?.broadcast_mul(&w)?.sum_all();
        let e = crate::losses::gradcheck::max_error(f, &x, 1e-6).unwrap();
        assert!(e < 1e-7, "{e}");
    }
}
