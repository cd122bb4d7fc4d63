//! Domain adaptation methods (and their bounds) on the time-series FCN: one file per method,
//! each registered once in [`crate::methods::REGISTRY`].
//!
//! | file | methods |
//! |---|---|
//! | [`supervised`] | `none` (source only), `target_only` (train on target) |
//! | [`codats`] | `codats`, `codats_ws` (Wilson et al., KDD 2020) |
//! | [`coral`] | `coral` (Deep CORAL, Sun & Saenko 2016) |
//! | [`dann_gs`] | `dann_gs` (DANN over grouped sources, the CoDATS paper's baseline) |
//! | [`mmd`] | `mmd` (DDC-style multi-kernel MMD) |
//! | [`mdan`] | `mdan` (MDAN-smooth, Zhao et al. 2018) |
//! | [`cdan`] | `cdan` (CDAN and CDAN+E, Long et al. 2018) |
//! | [`homm`] | `homm` (HoMM, third-order moment matching, Chen et al. 2020) |
//! | [`dsan`] | `dsan` (DSAN's local MMD, Zhu et al. 2020) |
//! | [`dirt_t`] | `dirt_t` (VADA, then DIRT-T refinement, Shu et al. 2018) |
//! | [`advskm`] | `advskm` (AdvSKM, adversarial spectral kernel matching, Liu & Xue 2021) |
//! | [`rdann`] | `rdann` (R-DANN: CoDATS's adversarial loss on a GRU, Purushotham et al. 2017) |
//! | [`cotmix`] | `cotmix` (CoTMix: temporal mixup + contrastive losses, Eldele et al. 2023) |
//! | [`vrada`] | `vrada` (VRADA: the same loss on a variational RNN, plus its ELBO, Purushotham et al. 2017) |
//!
//! [`align`] is what the feature-alignment methods (CORAL, MMD, HoMM) share.

pub mod advskm;
pub mod align;
pub mod cdan;
pub mod codats;
pub mod coral;
pub mod cotmix;
pub mod dann_gs;
pub mod dirt_t;
pub mod dsan;
pub mod homm;
pub mod mdan;
pub mod mmd;
pub mod rdann;
pub mod supervised;
pub mod vrada;

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::{Batch, MethodKind, Slice};
use crate::nn::CodatsModel;

/// The batch's target slice; an adaptation method given none is a bug in its data needs.
pub(crate) fn target_slice(batch: &Batch, kind: MethodKind) -> Result<&Slice> {
    batch
        .target
        .as_ref()
        .ok_or_else(|| candle_core::Error::Msg(format!("{kind} needs a target slice")))
}

/// One training-mode forward pass over [all sources, target] (shared batch statistics, as
/// CoDATS does), the step most feature-level methods start from.
pub(crate) struct Joint {
    /// Features of the source rows, then the target rows.
    pub features: Tensor,
    /// The sources' windows, concatenated in source order.
    pub xs: Tensor,
    /// The sources' labels.
    pub ys: Tensor,
    /// Source rows (the first `n_src` of `features`).
    pub n_src: usize,
    /// Target rows (the last `n_tgt`).
    pub n_tgt: usize,
}

impl Joint {
    /// `model`'s features of the labelled sources and the target of `batch`.
    pub(crate) fn forward(
        model: &CodatsModel,
        batch: &Batch,
        kind: MethodKind,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let target = target_slice(batch, kind)?;
        let sources: Vec<&Slice> = batch.sources.iter().collect();
        let (xs, ys) = super::concat(&sources)?;
        let ys = ys.ok_or_else(|| candle_core::Error::Msg("unlabelled source".into()))?;
        let n_src = xs.dim(0)?;
        let n_tgt = target.x.dim(0)?;
        let features = model.features(&Tensor::cat(&[&xs, &target.x], 0)?, true, Some(rng))?;
        Ok(Self {
            features,
            xs,
            ys,
            n_src,
            n_tgt,
        })
    }
}
