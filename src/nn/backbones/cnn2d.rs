//! The small CNN of the PyTorch speed anchor (`../shared/anchors/torch_ssl_step.py`), a CPU-sized
//! network for 28×28 / 32×32 images:
//! [conv3x3 C→32, BN, ReLU] [conv3x3 32→32, BN, ReLU] maxpool2 [conv3x3 32→64, BN, ReLU]
//! [conv3x3 64→64, BN, ReLU] maxpool2 [conv3x3 64→128, BN, ReLU] global average pool → 128.
//!
//! Convolutions have no bias and padding 1; batch norm has ε = 1e-3 and running-stat momentum
//! 0.001 in PyTorch terms, with PyTorch's unbiased running variance ([`BatchNorm2d`]).
//! Initialise the kernels with [`crate::nn::init::kaiming_normal_init`] (He-normal, fan-out).

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::fast::BufferPool;
use crate::nn::fast_cnn::{cnn_eval, CnnParams, CnnTrain};
use crate::nn::layers::{BatchNorm2d, Conv2d, SSL_BN_EPS, SSL_BN_MOMENTUM};
use crate::nn::{Backbone, Kernels, Mode};

/// (filters, followed by a 2×2 max pool) of the five conv blocks.
pub const SMALL_CNN_LAYERS: [(usize, bool); 5] = [
    (32, false),
    (32, true),
    (64, false),
    (64, true),
    (128, false),
];
/// Width of the feature vector.
pub const SMALL_CNN_FEATURES: usize = 128;

/// The anchor's small CNN as a [`Backbone`]. Parameter names: `conv1.weight` … `conv5.weight`,
/// `bn1.*` … `bn5.*`, and `conv{i}.gct.*` when built with GCT gates — the same for both
/// [`Kernels`], so checkpoints are interchangeable.
///
/// With [`Kernels::Fast`] training and evaluation on f32 CPU tensors run the fused kernels of
/// [`crate::nn::fast_cnn`]; with GCT gates, or on other devices/dtypes, the network falls back
/// to the plain candle path ([`Kernels::Candle`]), which is also the reference.
#[derive(Debug, Clone)]
pub struct SmallCnn {
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm2d>,
    kernels: Kernels,
    /// Activation buffers the fast training op reuses from step to step.
    pool: Arc<BufferPool>,
}

impl SmallCnn {
    /// Builds the network for `channels` input channels under `vb`; `gct` puts a GCT gate in
    /// front of each convolution; `kernels` picks the implementation (see [`SmallCnn`]).
    pub fn new(channels: usize, gct: bool, kernels: Kernels, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::new();
        let mut bns = Vec::new();
        let mut c_in = channels;
        for (i, &(filters, _)) in SMALL_CNN_LAYERS.iter().enumerate() {
            convs.push(Conv2d::new(
                c_in,
                filters,
                3,
                1,
                gct,
                vb.pp(format!("conv{}", i + 1)),
            )?);
            bns.push(BatchNorm2d::new(
                filters,
                SSL_BN_EPS,
                SSL_BN_MOMENTUM,
                vb.pp(format!("bn{}", i + 1)),
            )?);
            c_in = filters;
        }
        Ok(Self {
            convs,
            bns,
            kernels,
            pool: Arc::default(),
        })
    }

    /// The same network with batch-norm running-statistics momentum `momentum` (the
    /// constructor's is [`SSL_BN_MOMENTUM`]).
    pub fn with_bn_momentum(mut self, momentum: f64) -> Self {
        self.bns = self
            .bns
            .into_iter()
            .map(|bn| bn.with_momentum(momentum))
            .collect();
        self
    }

    /// Whether `x` runs on the fused kernels.
    fn fast_applies(&self, x: &Tensor) -> bool {
        self.kernels == Kernels::Fast
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.convs.iter().all(|c| !c.gated())
    }

    fn fast_forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let params: Vec<CnnParams> = self
            .convs
            .iter()
            .zip(&self.bns)
            .map(|(conv, bn)| (conv.weight(), bn.affine().0, bn.affine().1))
            .collect();
        let pools: Vec<bool> = SMALL_CNN_LAYERS.iter().map(|&(_, p)| p).collect();
        let eps = self.bns[0].eps();
        if mode == Mode::Eval {
            let running = self
                .bns
                .iter()
                .map(|bn| bn.running_stats())
                .collect::<Result<Vec<_>>>()?;
            return cnn_eval(x, &params, &pools, &running, eps, &self.pool);
        }
        let (features, stats) = CnnTrain::apply(x, &params, &pools, eps, &self.pool)?;
        if mode == Mode::Train {
            let (b, _, h, w) = x.dims4()?;
            let mut n = b * h * w;
            for (bn, ((mean, var), &(_, pool))) in
                self.bns.iter().zip(stats.iter().zip(&SMALL_CNN_LAYERS))
            {
                bn.update_running(mean, var, n)?;
                if pool {
                    n /= 4;
                }
            }
        }
        Ok(features)
    }

    /// The batch norms, in layer order (their running statistics, for checks and EMA copies).
    pub fn batch_norms(&self) -> &[BatchNorm2d] {
        &self.bns
    }
}

/// `[B, C, H, W]` with `C` channels and H, W divisible by `multiple`, or a clear error.
pub(crate) fn check_image(x: &Tensor, channels: usize, multiple: usize, who: &str) -> Result<()> {
    let dims = x.dims();
    match *dims {
        [_, c, h, w]
            if c == channels && h % multiple == 0 && w % multiple == 0 && h > 0 && w > 0 =>
        {
            Ok(())
        }
        [_, c, h, w] if c == channels => candle_core::bail!(
            "{who}: image height and width must be positive multiples of {multiple}, got {h}×{w}"
        ),
        [_, c, _, _] => candle_core::bail!("{who}: expected {channels} input channels, got {c}"),
        _ => candle_core::bail!("{who}: expected images [B, C, H, W], got shape {dims:?}"),
    }
}

/// `x` `[B, C, H, W]` max-pooled over 2×2 windows (H, W even).
///
/// The gradient goes to one winner per window, the first of the four in row-major order on ties,
/// as PyTorch's `max_pool2d` (and the fast path) route it. A max *reduction* would not do: its
/// backward passes the full gradient to every tied element, and ties at positive values are
/// everywhere in real images (a constant background gives equal activations across a window),
/// so it multiplied the gradient of background regions by up to 4 per pool.
pub(crate) fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let windows = x
        .reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((b, c, h / 2, w / 2, 4))?;
    // candle's argmax keeps the first of equal maxima.
    let winner = windows.detach().argmax_keepdim(4)?;
    windows.gather(&winner, 4)?.squeeze(4)
}

impl Backbone for SmallCnn {
    fn feature_dim(&self) -> usize {
        SMALL_CNN_FEATURES
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let channels = self.convs[0].weight().dim(1)?;
        check_image(x, channels, 4, "small-cnn")?;
        if self.fast_applies(x) {
            return self.fast_forward(x, mode);
        }
        let mut h = if mode == Mode::Eval {
            x.detach()
        } else {
            x.clone()
        };
        for ((conv, bn), &(_, pool)) in self.convs.iter().zip(&self.bns).zip(&SMALL_CNN_LAYERS) {
            h = bn.forward(&conv.forward(&h)?, mode)?.relu()?;
            if pool {
                h = max_pool2(&h)?;
            }
        }
        h.mean(3)?.mean(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn max_pool2_picks_each_window_maximum_and_sends_its_gradient_to_one_winner() -> Result<()> {
        // One 4×4 image: windows (row-major) with a unique max, a four-way tie at 0.5 (a constant
        // background), a tie between the second and fourth positions, and negative values.
        #[rustfmt::skip]
        let x = Var::from_vec(vec![
            1.0f32, 3.0,   0.5, 0.5,
            2.0,    0.0,   0.5, 0.5,
           -1.0,    7.0,  -4.0, -3.0,
            5.0,    7.0,  -2.0, -5.0,
        ], (1, 1, 4, 4), &Device::Cpu)?;
        let y = max_pool2(x.as_tensor())?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [3.0, 0.5, 7.0, -2.0]);
        // Upstream gradients 1, 10, 100, 1000: each lands once, on the first winner.
        let up = Tensor::from_vec(
            vec![1.0f32, 10.0, 100.0, 1000.0],
            (1, 1, 2, 2),
            &Device::Cpu,
        )?;
        let grads = (y * up)?.sum_all()?.backward()?;
        let g = grads.get(x.as_tensor()).expect("gradient").flatten_all()?;
        #[rustfmt::skip]
        assert_eq!(g.to_vec1::<f32>()?, [
            0.0, 1.0,     10.0, 0.0,
            0.0, 0.0,      0.0, 0.0,
            0.0, 100.0,    0.0, 0.0,
            0.0, 0.0,   1000.0, 0.0,
        ]);
        Ok(())
    }
}
