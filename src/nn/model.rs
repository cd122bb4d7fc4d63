//! The CoDATS model: FCN feature extractor, one-layer task head, and a domain head behind a GRL.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Init, Linear, VarBuilder};
use rand_chacha::ChaCha8Rng;

use std::sync::Arc;

use super::fast::{BnRelu, BufferPool, ConvSameCl};
use super::fast_fcn::FcnTrain;
use super::fast_head::{DomainHeadTrain, HeadParams};
use super::layers::Gct;
use super::series::{AdatimeCnn, GruEncoder, SeriesBackbone, SeriesFe, GRU_HIDDEN};
use super::{Backbone, Dropout, GradReverse, Mode};

/// Which implementation runs the FCN: the fast hand-written CPU kernels, or plain candle ops
/// (the reference, and the path for devices without the fast kernels).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// Channels-last GEMM convolutions and fused BN+ReLU (see `nn::fast`).
    #[default]
    Fast,
    /// candle-nn's conv1d and BatchNorm.
    Candle,
}

impl Kernels {
    /// The name on the command line and in config.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Kernels::Fast => "fast",
            Kernels::Candle => "candle",
        }
    }
}

/// Keras BatchNormalization defaults: momentum 0.99 (0.01 in candle terms), ε = 1e-3.
pub fn keras_bn() -> BatchNormConfig {
    BatchNormConfig {
        eps: 1e-3,
        remove_mean: true,
        affine: true,
        momentum: 0.01,
    }
}

/// Shapes that fix the model: input channels, classes, and domain-classifier outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    /// Input channels (UCI HAR: 9).
    pub channels: usize,
    /// Task classes.
    pub classes: usize,
    /// Domain-classifier outputs (n_sources + 1), or `None` when the method has no domain head.
    pub domains: Option<usize>,
    /// FCN implementation.
    pub kernels: Kernels,
    /// A GCT gate in front of each FCN convolution (`--gct`; plain candle path only).
    pub gct: bool,
    /// The feature extractor (`--backbone`).
    pub backbone: SeriesBackbone,
}

/// A 1D convolution without bias and with TensorFlow "same" padding (kernel 8: 3 left, 4 right).
#[derive(Debug, Clone)]
pub struct SameConv1d {
    weight: Tensor,
    left: usize,
    right: usize,
}

impl SameConv1d {
    /// Builds a bias-free convolution `[out, in, kernel]` named `weight` under `vb`.
    pub fn new(c_in: usize, c_out: usize, kernel: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((c_out, c_in, kernel), "weight", Init::Const(0.0))?;
        let total = kernel - 1;
        Ok(Self {
            weight,
            left: total / 2,
            right: total - total / 2,
        })
    }
    /// Builds a bias-free convolution `[out, in, kernel]` named `weight` under `vb` with `pad`
    /// zeros on both sides (PyTorch's `padding=pad`): `T + 2·pad − kernel + 1` outputs.
    pub fn padded(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        pad: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints((c_out, c_in, kernel), "weight", Init::Const(0.0))?;
        if 2 * pad + 1 < kernel {
            candle_core::bail!(
                "a width-{kernel} convolution needs padding ≥ {}",
                (kernel - 1) / 2
            );
        }
        Ok(Self {
            weight,
            left: pad,
            right: pad,
        })
    }

    /// The kernel `[out, in, kernel]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// Zeros added before / after the sequence.
    pub fn padding(&self) -> (usize, usize) {
        (self.left, self.right)
    }
}

impl Module for SameConv1d {
    /// Reference convolution from plain candle ops: pad, unfold the K shifted views into
    /// `[B, Cin·K, T]`, one matmul. (candle 0.11's `conv1d` gives wrong kernel gradients on CPU
    /// for batches > 1 — its backward convolves with a non-contiguous kernel; see
    /// docs/ARCHITECTURE.md — so the reference path does not use it.)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c_in, t) = x.dims3()?;
        let (c_out, _, k) = self.weight.dims3()?;
        let xp = x.pad_with_zeros(2, self.left, self.right)?;
        // Outputs: T for "same" padding (left + right = K − 1).
        let t_out = t + self.left + self.right + 1 - k;
        let views: Vec<Tensor> = (0..k)
            .map(|j| xp.narrow(2, j, t_out))
            .collect::<Result<_>>()?;
        let cols = Tensor::stack(&views, 2)?.reshape((b, c_in * k, t_out))?;
        self.weight
            .reshape((1, c_out, c_in * k))?
            .broadcast_matmul(&cols)
    }
}

/// The CoDATS fully convolutional feature extractor: 3 × [conv → BN → ReLU], then global average pooling.
/// Built with GCT, each convolution is preceded by a [`Gct`] gate (`conv{i}.gct.*`), identity at
/// initialisation.
#[derive(Debug, Clone)]
pub struct Fcn {
    convs: Vec<SameConv1d>,
    /// One gate per convolution when built with GCT, else empty (no variables created).
    gcts: Vec<Gct>,
    bns: Vec<BatchNorm>,
    fast_bns: Vec<BnRelu>,
    kernels: Kernels,
    /// Activation buffers the fast training op reuses from step to step.
    pool: Arc<BufferPool>,
}

/// (filters, kernel) of the three FCN blocks.
pub const FCN_LAYERS: [(usize, usize); 3] = [(128, 8), (256, 5), (128, 3)];
/// Width of the feature vector the FCN produces.
pub const FEATURES: usize = 128;
/// Hidden width of the domain classifier.
pub const DOMAIN_HIDDEN: usize = 500;

impl Fcn {
    /// Builds the FCN for `channels` input channels under `vb` (`conv1`, `bn1`, ...); `gct` puts
    /// a GCT gate in front of each convolution (`conv1.gct`, ...), which only the plain candle
    /// path runs (the fast kernels have no GCT: asking for both is an error).
    pub fn new(channels: usize, kernels: Kernels, gct: bool, vb: VarBuilder) -> Result<Self> {
        if gct && kernels == Kernels::Fast {
            candle_core::bail!(
                "--gct runs on the plain candle path only: use --kernels candle (the fast FCN kernels have no GCT)"
            );
        }
        let mut convs = Vec::new();
        let mut gcts = Vec::new();
        let mut bns = Vec::new();
        let mut fast_bns = Vec::new();
        let mut c_in = channels;
        for (i, (filters, kernel)) in FCN_LAYERS.iter().enumerate() {
            if gct {
                gcts.push(Gct::new(c_in, vb.pp(format!("conv{}", i + 1)).pp("gct"))?);
            }
            convs.push(SameConv1d::new(
                c_in,
                *filters,
                *kernel,
                vb.pp(format!("conv{}", i + 1)),
            )?);
            bns.push(candle_nn::batch_norm(
                *filters,
                keras_bn(),
                vb.pp(format!("bn{}", i + 1)),
            )?);
            fast_bns.push(BnRelu::new(
                *filters,
                keras_bn(),
                vb.pp(format!("bn{}", i + 1)),
            )?);
            c_in = *filters;
        }
        Ok(Self {
            convs,
            gcts,
            bns,
            fast_bns,
            kernels,
            pool: Arc::default(),
        })
    }

    /// `[B, C, T]` → `[B, 128]` features; `train` selects batch statistics and updates running ones.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward(x, if train { Mode::Train } else { Mode::Eval })
    }
}

/// Batch norm with the batch's own statistics (biased variance, as candle's training forward)
/// that leaves the running statistics alone: `[B, C, T]`.
pub(crate) fn batch_norm_keep_stats(bn: &BatchNorm, x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(2)?.mean_keepdim(0)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
    let y = centred.broadcast_div(&(var + bn.eps())?.sqrt()?)?;
    match bn.weight_and_bias() {
        Some((w, b)) => y
            .broadcast_mul(&w.reshape((1, (), 1))?)?
            .broadcast_add(&b.reshape((1, (), 1))?),
        None => Ok(y),
    }
}

impl Backbone for Fcn {
    fn feature_dim(&self) -> usize {
        FEATURES
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if self.kernels == Kernels::Fast {
            if mode.batch_stats() {
                let params: Vec<_> = self
                    .convs
                    .iter()
                    .zip(&self.fast_bns)
                    .map(|(conv, bn)| (conv.weight(), bn.affine().0, bn.affine().1))
                    .collect();
                let (features, stats) =
                    FcnTrain::apply(x, &params, self.fast_bns[0].eps(), &self.pool)?;
                if mode == Mode::Train {
                    BnRelu::update_all(&self.fast_bns, &stats, x.dim(0)? * x.dim(2)?)?;
                }
                return Ok(features);
            }
            // Evaluation computes no gradients (detached), channels-last from here on: [B, T, C].
            let mut h = x.detach().transpose(1, 2)?.contiguous()?;
            for (conv, bn) in self.convs.iter().zip(self.fast_bns.iter()) {
                let z = ConvSameCl::apply(&h, &conv.weight().detach())?;
                h = bn.forward_eval(&z)?;
            }
            return h.mean(1);
        }
        let mut h = x.clone();
        for (i, (conv, bn)) in self.convs.iter().zip(self.bns.iter()).enumerate() {
            if let Some(gate) = self.gcts.get(i) {
                h = gate.forward(&h)?;
            }
            let z = conv.forward(&h)?;
            h = match mode {
                Mode::Train => bn.forward_t(&z, true)?,
                Mode::TrainKeepStats => batch_norm_keep_stats(bn, &z)?,
                Mode::Eval => bn.forward_t(&z, false)?,
            }
            .relu()?;
        }
        h.mean(2)
    }
}

/// Domain classifier: [linear 500 (no bias) → BN → ReLU → dropout 0.3] × 2 → linear(domains).
#[derive(Debug, Clone)]
pub struct DomainHead {
    fc: Vec<Linear>,
    bns: Vec<BatchNorm>,
    /// The same batch-norm variables, for the fused training op.
    fast_bns: Vec<BnRelu>,
    out: Linear,
    dropout: Dropout,
    kernels: Kernels,
}

fn linear(c_in: usize, c_out: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((c_out, c_in), "weight", Init::Const(0.0))?;
    let b = if bias {
        Some(vb.get_with_hints(c_out, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

impl DomainHead {
    /// Builds the domain head with `domains` outputs under `vb`; `kernels` picks the training
    /// implementation (evaluation always runs the candle ops).
    pub fn new(domains: usize, kernels: Kernels, vb: VarBuilder) -> Result<Self> {
        Self::with_input(FEATURES, domains, kernels, vb)
    }

    /// The same head on inputs of width `input` instead of the FCN's [`FEATURES`] (CDAN's
    /// multilinear map of features and class probabilities).
    pub fn with_input(
        input: usize,
        domains: usize,
        kernels: Kernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut fc = Vec::new();
        let mut bns = Vec::new();
        let mut fast_bns = Vec::new();
        let mut c_in = input;
        for i in 0..2 {
            fc.push(linear(
                c_in,
                DOMAIN_HIDDEN,
                false,
                vb.pp(format!("fc{}", i + 1)),
            )?);
            bns.push(candle_nn::batch_norm(
                DOMAIN_HIDDEN,
                keras_bn(),
                vb.pp(format!("bn{}", i + 1)),
            )?);
            fast_bns.push(BnRelu::new(
                DOMAIN_HIDDEN,
                keras_bn(),
                vb.pp(format!("bn{}", i + 1)),
            )?);
            c_in = DOMAIN_HIDDEN;
        }
        let out = linear(DOMAIN_HIDDEN, domains, true, vb.pp("out"))?;
        Ok(Self {
            fc,
            bns,
            fast_bns,
            out,
            dropout: Dropout { p: 0.3 },
            kernels,
        })
    }

    /// Domain logits for `features`; `rng` = Some in training (BN batch stats + dropout).
    pub fn forward(&self, features: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let train = rng.is_some();
        if let (Some(rng), Kernels::Fast) = (rng.as_deref_mut(), self.kernels) {
            return self.forward_train_fused(features, rng);
        }
        let mut h = features.clone();
        for (fc, bn) in self.fc.iter().zip(self.bns.iter()) {
            h = bn.forward_t(&fc.forward(&h)?, train)?.relu()?;
            h = self.dropout.forward(&h, rng.as_deref_mut())?;
        }
        self.out.forward(&h)
    }

    /// Training-mode forward as one fused op ([`DomainHeadTrain`]); draws the dropout masks in
    /// the order the candle path does.
    fn forward_train_fused(&self, features: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let b = features.dim(0)?;
        let n = b * DOMAIN_HIDDEN;
        let mut masks = Vec::with_capacity(self.fc.len() * n);
        for _ in &self.fc {
            match self.dropout.mask(n, rng) {
                Some(m) => masks.extend(m),
                None => masks.extend(std::iter::repeat_n(1.0, n)),
            }
        }
        let params = HeadParams {
            hidden: self.fc.iter().map(|l| l.weight()).collect(),
            bn: self.fast_bns.iter().map(|bn| bn.affine()).collect(),
            out: (
                self.out.weight(),
                self.out.bias().expect("the output layer has a bias"),
            ),
        };
        let (logits, stats) =
            DomainHeadTrain::apply(features, &params, masks, self.fast_bns[0].eps())?;
        BnRelu::update_all(&self.fast_bns, &stats, b)?;
        Ok(logits)
    }
}

/// The whole CoDATS network. Parameter names: `fe.*`, `task.*`, `domain.*`.
#[derive(Debug, Clone)]
pub struct CodatsModel {
    /// Feature extractor (the FCN unless `--backbone` chose another).
    pub fe: SeriesFe,
    /// Task classifier (one linear layer).
    pub task: Linear,
    /// Domain classifier, present for adversarial methods.
    pub domain: Option<DomainHead>,
}

impl CodatsModel {
    /// Builds the model's variables under `vb` (initialise them with [`super::glorot_init`]).
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        let fe = match cfg.backbone {
            SeriesBackbone::Fcn => {
                SeriesFe::Fcn(Fcn::new(cfg.channels, cfg.kernels, cfg.gct, vb.pp("fe"))?)
            }
            SeriesBackbone::AdatimeCnn => {
                SeriesFe::AdatimeCnn(AdatimeCnn::new(cfg.channels, vb.pp("fe"))?)
            }
            SeriesBackbone::Gru => {
                SeriesFe::Gru(GruEncoder::new(cfg.channels, GRU_HIDDEN, vb.pp("fe"))?)
            }
            SeriesBackbone::Vrnn => SeriesFe::Vrnn(crate::nn::series::Vrnn::new(
                cfg.channels,
                crate::nn::series::VRNN_HIDDEN,
                crate::nn::series::VRNN_LATENT,
                vb.pp("fe"),
            )?),
        };
        let task = linear(fe.feature_dim(), cfg.classes, true, vb.pp("task"))?;
        let domain = match cfg.domains {
            Some(d) => Some(DomainHead::with_input(
                fe.feature_dim(),
                d,
                cfg.kernels,
                vb.pp("domain"),
            )?),
            None => None,
        };
        Ok(Self { fe, task, domain })
    }

    /// Width of the features (128 for the FCN).
    pub fn feature_dim(&self) -> usize {
        self.fe.feature_dim()
    }

    /// Features `[B, F]` of windows `[B, C, T]`: `train` selects batch statistics (updating the
    /// running ones) and draws a backbone's dropout masks from `rng` (the FCN has none and
    /// draws nothing; one that has needs `rng` in training).
    pub fn features(
        &self,
        x: &Tensor,
        train: bool,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        self.fe
            .forward(x, if train { Mode::Train } else { Mode::Eval }, rng)
    }

    /// Training-mode features and the feature extractor's own loss, when it has one (VRADA's
    /// VRNN: its negative ELBO): see [`SeriesFe::forward_with_loss`].
    pub fn features_with_loss(
        &self,
        x: &Tensor,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<(Tensor, Option<crate::nn::series::vrnn::VrnnOutput>)> {
        self.fe.forward_with_loss(x, Mode::Train, rng)
    }

    /// Features `[B, F]` of windows `[B, C, T]` in `mode` (see [`Backbone`]).
    pub fn features_in(
        &self,
        x: &Tensor,
        mode: Mode,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        self.fe.forward(x, mode, rng)
    }

    /// Task logits of features.
    pub fn task_logits(&self, features: &Tensor) -> Result<Tensor> {
        self.task.forward(features)
    }

    /// Domain logits behind the gradient-reversal layer with factor `lambda`.
    pub fn domain_logits(
        &self,
        features: &Tensor,
        lambda: f64,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let head = self
            .domain
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("this model has no domain head".into()))?;
        head.forward(&GradReverse::apply(features, lambda)?, rng)
    }

    /// Eval-mode task logits of windows `[B, C, T]`.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.task_logits(&self.features(x, false, None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// An FCN for 3 channels on the plain path, with or without GCT, Glorot-initialised from
    /// seed 5, its variables in `vm`.
    fn fcn(gct: bool, dtype: DType) -> (VarMap, Fcn) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
        let fe = Fcn::new(3, Kernels::Candle, gct, vb.pp("fe")).expect("fcn");
        crate::nn::glorot_init(&vm, 5).expect("init");
        (vm, fe)
    }

    fn windows(n: usize, dtype: DType) -> Tensor {
        let v: Vec<f64> = (0..n * 3 * 16)
            .map(|i| (i as f64 * 0.61).sin() * 1.7 + (i % 5) as f64 * 0.1)
            .collect();
        Tensor::from_vec(v, (n, 3, 16), &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .expect("windows")
    }

    fn names(vm: &VarMap) -> Vec<String> {
        let mut n: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        n.sort();
        n
    }

    #[test]
    fn gct_off_creates_no_variables_and_gct_on_is_the_identity_at_init() -> Result<()> {
        let (vm_off, off) = fcn(false, DType::F32);
        let (vm_on, on) = fcn(true, DType::F32);
        assert!(names(&vm_off).iter().all(|n| !n.contains("gct")));
        let gated: Vec<String> = names(&vm_on)
            .into_iter()
            .filter(|n| n.contains("gct"))
            .collect();
        assert_eq!(gated.len(), 9, "{gated:?}");
        assert!(gated.contains(&"fe.conv1.gct.alpha".to_string()));
        // The gates draw nothing from the initialisation stream: same seed, same weights.
        let data_on = vm_on.data().lock().unwrap();
        for (name, var) in vm_off.data().lock().unwrap().iter() {
            let a = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let b = data_on[name].as_tensor().flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(a, b, "{name}");
        }
        drop(data_on);
        // α = 1, γ = β = 0 make every gate exactly 1: the same bits in every mode.
        let x = windows(4, DType::F32);
        for mode in [Mode::TrainKeepStats, Mode::Train, Mode::Eval] {
            let a = off.forward(&x, mode)?.flatten_all()?.to_vec1::<f32>()?;
            let b = on.forward(&x, mode)?.flatten_all()?.to_vec1::<f32>()?;
            assert!(
                a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{mode:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn gct_is_refused_on_the_fast_kernels() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let err = Fcn::new(3, Kernels::Fast, true, vb)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--gct runs on the plain candle path only"),
            "{err}"
        );
    }

    #[test]
    fn the_gated_fcn_input_gradient_matches_finite_differences() -> Result<()> {
        let (vm, fe) = fcn(true, DType::F64);
        // Gates away from the identity (γ, β non-zero, α ≠ 1), so that they shape the gradient.
        for (name, var) in vm.data().lock().unwrap().iter() {
            let c = var.dim(0)?;
            let v: Vec<f64> = (0..c)
                .map(|i| match name.rsplit('.').next() {
                    Some("alpha") => 0.7 + 0.05 * (i % 7) as f64,
                    Some("gamma") => 0.9 - 0.1 * (i % 5) as f64,
                    Some("beta") => 0.2 - 0.03 * (i % 11) as f64,
                    _ => f64::NAN,
                })
                .collect();
            if name.contains("gct") {
                var.set(&Tensor::from_vec(v, c, &Device::Cpu)?)?;
            }
        }
        let x = windows(3, DType::F64);
        let w: Vec<f64> = (0..3 * FEATURES)
            .map(|i| ((i * 7) % 13) as f64 / 13.0 - 0.5)
            .collect();
        let w = Tensor::from_vec(w, (3, FEATURES), &Device::Cpu)?;
        let loss = |x: &Tensor| (fe.forward(x, Mode::TrainKeepStats)? * &w)?.sum_all();
        let e = max_error(loss, &x, 1e-6)?;
        assert!(e < 1e-6, "gated FCN input gradient error {e}");
        // And the gates change the function (the check is not of the ungated network).
        let (_, plain) = fcn(false, DType::F64);
        let d = (fe.forward(&x, Mode::TrainKeepStats)?
            - plain.forward(&x, Mode::TrainKeepStats)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?;
        assert!(d > 1e-3, "{d}");
        Ok(())
    }
}
