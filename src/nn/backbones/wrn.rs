//! WideResNet-28-2 as the semi-supervised literature (FixMatch, TorchSSL/USB) uses it: a 3×3
//! stem conv C→16, three groups of four pre-activation basic blocks of widths 32/64/128 (strides
//! 1, 2, 2), then batch norm + leaky ReLU(0.1) and global average pooling → 128 features.
//! Batch norms: ε = 1e-3, momentum 0.001 (PyTorch terms). No dropout (USB's default rate 0).
//!
//! Block (USB's `BasicBlock`): `out = conv2(lrelu(bn2(conv1(a))))`, returned as
//! `shortcut + out`. With equal widths `a = lrelu(bn1(x))` and the shortcut is `x`. When the width
//! changes the shortcut is a 1×1 (strided) conv: in the first group
//! (`activate_before_residual`) both it and `conv1` read `lrelu(bn1(x))`; in groups 2 and 3 both
//! read the raw `x` — USB computes `bn1` there and discards it, so this port leaves that unused
//! `bn1` out (it would only update its own running statistics).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::cnn2d::check_image;
use crate::nn::layers::{BatchNorm2d, Conv2d, SSL_BN_EPS, SSL_BN_MOMENTUM};
use crate::nn::{Backbone, Mode};

/// Width of the feature vector.
pub const WRN_FEATURES: usize = 128;
/// Blocks per group, `(28 − 4) / 6`.
const BLOCKS: usize = 4;
/// Leaky-ReLU slope.
const SLOPE: f64 = 0.1;

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm2d> {
    BatchNorm2d::new(c, SSL_BN_EPS, SSL_BN_MOMENTUM, vb)
}

fn leaky(x: &Tensor) -> Result<Tensor> {
    x.maximum(&(x * SLOPE)?)
}

/// One pre-activation basic block (names `bn1`, `conv1`, `bn2`, `conv2`, `shortcut`).
#[derive(Debug, Clone)]
struct Block {
    bn1: Option<BatchNorm2d>,
    conv1: Conv2d,
    bn2: BatchNorm2d,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl Block {
    fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        pre_act: bool,
        gct: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let equal = c_in == c_out;
        Ok(Self {
            bn1: if equal || pre_act {
                Some(bn(c_in, vb.pp("bn1"))?)
            } else {
                None
            },
            conv1: Conv2d::new(c_in, c_out, 3, stride, gct, vb.pp("conv1"))?,
            bn2: bn(c_out, vb.pp("bn2"))?,
            conv2: Conv2d::new(c_out, c_out, 3, 1, gct, vb.pp("conv2"))?,
            shortcut: if equal {
                None
            } else {
                Some(Conv2d::new(c_in, c_out, 1, stride, gct, vb.pp("shortcut"))?)
            },
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_scaled(x, mode, None)
    }

    /// The block with its residual branch multiplied per sample by `keep` (`[B, 1, 1, 1]`:
    /// 0 or 1/p, stochastic depth) when given.
    fn forward_scaled(&self, x: &Tensor, mode: Mode, keep: Option<&Tensor>) -> Result<Tensor> {
        let a = match &self.bn1 {
            Some(bn1) => leaky(&bn1.forward(x, mode)?)?,
            None => x.clone(),
        };
        let out = leaky(&self.bn2.forward(&self.conv1.forward(&a)?, mode)?)?;
        let out = self.conv2.forward(&out)?;
        let out = match keep {
            Some(k) => out.broadcast_mul(k)?,
            None => out,
        };
        let skip = match &self.shortcut {
            None => x.clone(),
            Some(conv) => conv.forward(&a)?,
        };
        skip + out
    }
}

/// WideResNet-28-2 as a [`Backbone`] (candle ops only). Parameter names: `conv1.weight`,
/// `group{g}.block{i}.{bn1,conv1,bn2,conv2,shortcut}.*`, `bn.*`; `*.gct.*` with GCT gates.
#[derive(Debug, Clone)]
pub struct Wrn28_2 {
    stem: Conv2d,
    blocks: Vec<Block>,
    bn: BatchNorm2d,
}

impl Wrn28_2 {
    /// Builds the network for `channels` input channels under `vb`; `gct` puts a GCT gate in
    /// front of each convolution (shortcuts included). Initialise the kernels with
    /// [`crate::nn::init::kaiming_normal_init`].
    pub fn new(channels: usize, gct: bool, vb: VarBuilder) -> Result<Self> {
        let stem = Conv2d::new(channels, 16, 3, 1, gct, vb.pp("conv1"))?;
        let mut blocks = Vec::new();
        let mut c_in = 16;
        for (g, (&width, &stride)) in [32, 64, 128].iter().zip(&[1, 2, 2]).enumerate() {
            for i in 0..BLOCKS {
                let (ci, s) = if i == 0 { (c_in, stride) } else { (width, 1) };
                let vb_b = vb
                    .pp(format!("group{}", g + 1))
                    .pp(format!("block{}", i + 1));
                blocks.push(Block::new(ci, width, s, g == 0, gct, vb_b)?);
            }
            c_in = width;
        }
        Ok(Self {
            stem,
            blocks,
            bn: bn(WRN_FEATURES, vb.pp("bn"))?,
        })
    }
}

impl Wrn28_2 {
    /// The same network with batch-norm running-statistics momentum `momentum` (the
    /// constructor's is [`SSL_BN_MOMENTUM`]).
    pub fn with_bn_momentum(mut self, momentum: f64) -> Self {
        for b in &mut self.blocks {
            b.bn1 = b.bn1.take().map(|bn| bn.with_momentum(momentum));
            b.bn2 = b.bn2.clone().with_momentum(momentum);
        }
        self.bn = self.bn.clone().with_momentum(momentum);
        self
    }
}

impl Backbone for Wrn28_2 {
    fn feature_dim(&self) -> usize {
        WRN_FEATURES
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let channels = self.stem.weight().dim(1)?;
        check_image(x, channels, 4, "wrn-28-2")?;
        let x = if mode == Mode::Eval {
            x.detach()
        } else {
            x.clone()
        };
        let mut h = self.stem.forward(&x)?;
        for block in &self.blocks {
            h = block.forward(&h, mode)?;
        }
        leaky(&self.bn.forward(&h, mode)?)?.mean(3)?.mean(2)
    }

    fn forward_stochastic_depth(
        &self,
        x: &Tensor,
        mode: Mode,
        survival: f64,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Tensor> {
        use rand::Rng;
        if mode == Mode::Eval || survival >= 1.0 {
            return self.forward(x, mode);
        }
        let channels = self.stem.weight().dim(1)?;
        check_image(x, channels, 4, "wrn-28-2")?;
        let b = x.dim(0)?;
        let total = self.blocks.len() as f64;
        let mut h = self.stem.forward(x)?;
        for (l, block) in self.blocks.iter().enumerate() {
            // Only a block whose shortcut is the identity can be skipped (as drop-connect).
            if block.shortcut.is_some() {
                h = block.forward(&h, mode)?;
                continue;
            }
            let p = 1.0 - (l + 1) as f64 / total * (1.0 - survival);
            let keep: Vec<f32> = (0..b)
                .map(|_| {
                    if rng.random::<f64>() < p {
                        (1.0 / p) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            let keep = Tensor::from_vec(keep, (b, 1, 1, 1), x.device())?;
            h = block.forward_scaled(&h, mode, Some(&keep))?;
        }
        leaky(&self.bn.forward(&h, mode)?)?.mean(3)?.mean(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// Stochastic depth on one identity block: a sample whose branch is dropped (keep 0) is its
    /// input unchanged and sends no gradient into the branch; a kept one (keep 1/p = 2) is its
    /// input plus twice the branch, whose every parameter gets twice the gradient of the
    /// unscaled branch. Batch statistics are the whole batch's either way.
    #[test]
    fn a_dropped_branch_is_the_identity_and_a_kept_one_is_scaled() -> Result<()> {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let block = Block::new(4, 4, 1, false, false, vb)?;
        crate::nn::kaiming_normal_init(&vm, 1)?;
        let x = Tensor::randn(0f64, 1., (2, 4, 5, 5), &Device::Cpu)?;
        let keep = |a: f64, b: f64| Tensor::new(&[a, b], &Device::Cpu)?.reshape((2, 1, 1, 1));
        let plain = block.forward_scaled(&x, Mode::TrainKeepStats, Some(&keep(1.0, 1.0)?))?;
        assert_eq!(
            plain.flatten_all()?.to_vec1::<f64>()?,
            block
                .forward(&x, Mode::TrainKeepStats)?
                .flatten_all()?
                .to_vec1::<f64>()?
        );
        let sd = block.forward_scaled(&x, Mode::TrainKeepStats, Some(&keep(0.0, 2.0)?))?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()
        };
        assert_eq!(diff(&sd.get(0)?, &x.get(0)?)?, 0.0);
        let g_dropped = sd.get(0)?.sum_all()?.backward()?;
        for (name, var) in vm.data().lock().expect("lock").iter() {
            if let Some(g) = g_dropped.get(var.as_tensor()) {
                assert_eq!(g.abs()?.sum_all()?.to_scalar::<f64>()?, 0.0, "{name}");
            }
        }
        let branch = (plain.get(1)? - x.get(1)?)?;
        assert!(diff(&sd.get(1)?, &(x.get(1)? + (&branch * 2.0)?)?)? < 1e-12);
        // Gradients of sample 1's output: twice those of the unscaled branch for sample 1.
        let g_sd = sd.get(1)?.sum_all()?.backward()?;
        let one = block.forward_scaled(&x, Mode::TrainKeepStats, Some(&keep(0.0, 1.0)?))?;
        let g_one = one.get(1)?.sum_all()?.backward()?;
        for (name, var) in vm.data().lock().expect("lock").iter() {
            if name.contains("running") {
                continue;
            }
            let a = g_sd.get(var.as_tensor()).expect("a gradient");
            let b = g_one.get(var.as_tensor()).expect("a gradient");
            assert!(diff(a, &(b * 2.0)?)? < 1e-9, "{name}");
            assert!(b.abs()?.sum_all()?.to_scalar::<f64>()? > 0.0, "{name}");
        }
        Ok(())
    }
}
