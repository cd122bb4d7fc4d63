//! AdaTime's CNN feature extractor (Ragab et al., "ADATIME: A Benchmarking Suite for Domain
//! Adaptation on Time Series Data", TKDD 2023), with its UCI HAR settings: three blocks of
//! convolution (no bias) → batch norm → ReLU → max-pool (width 2, stride 2, padding 1), 64, 128
//! and 128 filters of widths 5, 8 and 8 (paddings 2, 4, 4), dropout 0.5 after the first block,
//! then average pooling over time to 128 features. Batch norm uses PyTorch's defaults (ε 1e-5,
//! momentum 0.1), as AdaTime's PyTorch code does. Weights start Glorot-uniform, as every codats
//! network ([`crate::nn::glorot_init`]).

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Module, ModuleT, VarBuilder};
use rand_chacha::ChaCha8Rng;

use crate::nn::backbone::Mode;
use crate::nn::model::{batch_norm_keep_stats, SameConv1d};
use crate::nn::Dropout;

/// Width of the feature vector.
pub const ADATIME_CNN_FEATURES: usize = 128;
/// (filters, kernel width, padding) of the three blocks.
pub const ADATIME_CNN_LAYERS: [(usize, usize, usize); 3] = [(64, 5, 2), (128, 8, 4), (128, 8, 4)];
/// Dropout after the first block.
pub const ADATIME_CNN_DROPOUT: f32 = 0.5;

fn torch_bn() -> BatchNormConfig {
    BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    }
}

/// AdaTime's three-block CNN. Parameter names: `conv{1,2,3}.weight`, `bn{1,2,3}.*`.
#[derive(Debug, Clone)]
pub struct AdatimeCnn {
    convs: Vec<SameConv1d>,
    bns: Vec<BatchNorm>,
    dropout: Dropout,
}

impl AdatimeCnn {
    /// Builds it for `channels` input channels under `vb`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::new();
        let mut bns = Vec::new();
        let mut c_in = channels;
        for (i, (filters, kernel, pad)) in ADATIME_CNN_LAYERS.iter().enumerate() {
            convs.push(SameConv1d::padded(
                c_in,
                *filters,
                *kernel,
                *pad,
                vb.pp(format!("conv{}", i + 1)),
            )?);
            bns.push(candle_nn::batch_norm(
                *filters,
                torch_bn(),
                vb.pp(format!("bn{}", i + 1)),
            )?);
            c_in = *filters;
        }
        Ok(Self {
            convs,
            bns,
            dropout: Dropout {
                p: ADATIME_CNN_DROPOUT,
            },
        })
    }

    /// Width of the feature vector (128).
    pub fn feature_dim(&self) -> usize {
        ADATIME_CNN_FEATURES
    }

    /// `[B, C, T]` → `[B, 128]`. Training applies dropout with masks from `rng`, which it
    /// requires; a forward that keeps the running statistics (a perturbed or teacher pass)
    /// applies it when given `rng`; evaluation never.
    pub fn forward_with(
        &self,
        x: &Tensor,
        mode: Mode,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        if mode == Mode::Train && rng.is_none() {
            candle_core::bail!(
                "the adatime-cnn backbone trains with dropout: its training forward needs the step's RNG"
            );
        }
        let mut h = x.clone();
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            let z = conv.forward(&h)?;
            h = match mode {
                Mode::Train => bn.forward_t(&z, true)?,
                Mode::TrainKeepStats => batch_norm_keep_stats(bn, &z)?,
                Mode::Eval => bn.forward_t(&z, false)?,
            }
            .relu()?;
            h = max_pool_pad1(&h)?;
            if i == 0 && mode.batch_stats() {
                if let Some(r) = rng.as_deref_mut() {
                    if let Some(mask) = self.dropout.mask(h.elem_count(), r) {
                        let mask =
                            Tensor::from_vec(mask, h.shape(), h.device())?.to_dtype(h.dtype())?;
                        h = (h * mask)?;
                    }
                }
            }
        }
        h.mean(2)
    }
}

/// PyTorch's `MaxPool1d(kernel_size=2, stride=2, padding=1)` of `[B, C, T]` ≥ 0 (after a ReLU,
/// so zero padding equals PyTorch's −∞ padding: every window holds a real element):
/// `⌊T/2⌋ + 1` outputs.
fn max_pool_pad1(x: &Tensor) -> Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let out = t / 2 + 1;
    // Pad 1 on the left and enough on the right to fill `out` pairs.
    let right = 2 * out - t - 1;
    let xp = x.pad_with_zeros(2, 1, right)?;
    xp.reshape((b, c, out, 2))?.max(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn max_pool_matches_pytorch_with_padding_one() {
        // torch.nn.MaxPool1d(2, 2, padding=1) of [1, 3, 2, 5, 4] is [1, 3, 5]; of
        // [1, 3, 2, 5] it is [1, 3, 5].
        let x = Tensor::new(&[[[1f32, 3., 2., 5., 4.]]], &Device::Cpu).unwrap();
        let y: Vec<f32> = max_pool_pad1(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(y, [1., 3., 5.]);
        let x = Tensor::new(&[[[1f32, 3., 2., 5.]]], &Device::Cpu).unwrap();
        let y: Vec<f32> = max_pool_pad1(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(y, [1., 3., 5.]);
    }

    #[test]
    fn uci_har_windows_give_128_features_and_training_needs_the_rng() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let cnn = AdatimeCnn::new(9, vb).unwrap();
        crate::nn::glorot_init(&vm, 1).unwrap();
        let x = Tensor::randn(0f32, 1., (4, 9, 128), &Device::Cpu).unwrap();
        let f = cnn.forward_with(&x, Mode::Eval, None).unwrap();
        assert_eq!(f.dims(), [4, ADATIME_CNN_FEATURES]);
        let err = cnn
            .forward_with(&x, Mode::Train, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs the step's RNG"), "{err}");
        use rand::SeedableRng;
        let mut a = ChaCha8Rng::seed_from_u64(3);
        let mut b = ChaCha8Rng::seed_from_u64(3);
        let fa = cnn
            .forward_with(&x, Mode::TrainKeepStats, Some(&mut a))
            .unwrap();
        let fb = cnn
            .forward_with(&x, Mode::TrainKeepStats, Some(&mut b))
            .unwrap();
        let d = (fa - fb)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "same RNG, same dropout");
        // 128 → 65 → 34 → 18 steps; parameters as AdaTime's: 9·64·5 + 64·128·8 + 128·128·8.
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(
            n,
            9 * 64 * 5 + 64 * 128 * 8 + 128 * 128 * 8 + 4 * (64 + 128 + 128)
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let cnn = AdatimeCnn::new(2, vb).unwrap();
        crate::nn::glorot_init(&vm, 2).unwrap();
        let x = Tensor::randn(0f64, 1., (3, 2, 9), &Device::Cpu).unwrap();
        // Running statistics kept and no dropout, so every evaluation is the same function.
        let f = |x: &Tensor| {
            let feats = cnn.forward_with(x, Mode::TrainKeepStats, None)?;
            (feats.sqr()?.sum_all()? * 0.01)?.sum_all()
        };
        let e = crate::losses::gradcheck::max_error(f, &x, 1e-6).unwrap();
        assert!(e < 1e-5, "{e}");
    }
}
