//! Time-series feature extractors (`[B, C, T]` → `[B, features]`) under the task and domain
//! heads of the DA methods: the CoDATS FCN (the default, [`crate::nn::model::Fcn`]), AdaTime's
//! three-block CNN ([`AdatimeCnn`], for like-for-like comparisons with AdaTime's tables) and a
//! GRU ([`GruEncoder`], the feature extractor of R-DANN) and a variational RNN ([`Vrnn`],
//! VRADA's). Chosen with `codats train --backbone`.

pub mod adatime_cnn;
pub mod gru;
pub mod vrnn;

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

pub use adatime_cnn::{AdatimeCnn, ADATIME_CNN_FEATURES};
pub use gru::{GruEncoder, GRU_HIDDEN};
pub use vrnn::{Vrnn, VRNN_HIDDEN, VRNN_LATENT};

use super::backbone::{Backbone, Mode};
use super::model::Fcn;

/// Which time-series feature extractor a run trains.
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
pub enum SeriesBackbone {
    /// The CoDATS fully convolutional network (3 × conv-BN-ReLU with 128/256/128 filters of
    /// widths 8/5/3, global average pooling; 128 features).
    #[default]
    #[serde(rename = "fcn")]
    #[value(name = "fcn")]
    Fcn,
    /// AdaTime's CNN (Ragab et al. 2023, its UCI HAR settings): 3 × conv-BN-ReLU-maxpool with
    /// 64/128/128 filters of widths 5/8/8, dropout 0.5 after the first block, average pooling;
    /// 128 features.
    #[serde(rename = "adatime-cnn")]
    #[value(name = "adatime-cnn")]
    AdatimeCnn,
    /// A one-layer GRU with 100 units; the features are its last hidden state (R-DANN's
    /// recurrent feature extractor).
    #[serde(rename = "gru")]
    #[value(name = "gru")]
    Gru,
    /// A variational RNN (100 units, 100 latent dimensions; the features are the last step's
    /// latent): VRADA's feature extractor, trained with its ELBO (`--method vrada` only).
    #[serde(rename = "vrnn")]
    #[value(name = "vrnn")]
    Vrnn,
}

impl SeriesBackbone {
    /// The name on the command line and in config.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesBackbone::Fcn => "fcn",
            SeriesBackbone::AdatimeCnn => "adatime-cnn",
            SeriesBackbone::Gru => "gru",
            SeriesBackbone::Vrnn => "vrnn",
        }
    }

    /// Whether it is the default (config.toml then leaves the key out, as before it existed).
    pub fn is_default(&self) -> bool {
        *self == SeriesBackbone::Fcn
    }
}

impl std::fmt::Display for SeriesBackbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A built time-series feature extractor.
#[derive(Debug, Clone)]
pub enum SeriesFe {
    /// The CoDATS FCN.
    Fcn(Fcn),
    /// AdaTime's CNN.
    AdatimeCnn(AdatimeCnn),
    /// The GRU.
    Gru(GruEncoder),
    /// The VRNN.
    Vrnn(Vrnn),
}

impl SeriesFe {
    /// Width of the feature vector.
    pub fn feature_dim(&self) -> usize {
        match self {
            SeriesFe::Fcn(f) => f.feature_dim(),
            SeriesFe::AdatimeCnn(c) => c.feature_dim(),
            SeriesFe::Gru(g) => g.feature_dim(),
            SeriesFe::Vrnn(v) => v.feature_dim(),
        }
    }

    /// Features of windows `x` in `mode`. A backbone with dropout (AdaTime's CNN) draws its
    /// masks from `rng`, and refuses a [`Mode::Train`] pass without it, so that no training
    /// pass silently skips its dropout.
    pub fn forward(&self, x: &Tensor, mode: Mode, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        match self {
            SeriesFe::Fcn(f) => f.forward(x, mode),
            SeriesFe::AdatimeCnn(c) => c.forward_with(x, mode, rng),
            SeriesFe::Gru(g) => g.forward(x, mode),
            SeriesFe::Vrnn(v) => Ok(v.forward(x, mode, rng)?.features),
        }
    }

    /// [`SeriesFe::forward`] and the backbone's own training loss, for one that has one (the
    /// VRNN's negative ELBO, [`vrnn::VrnnOutput`]); `None` for the others.
    pub fn forward_with_loss(
        &self,
        x: &Tensor,
        mode: Mode,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<(Tensor, Option<vrnn::VrnnOutput>)> {
        match self {
            SeriesFe::Vrnn(v) => {
                let out = v.forward(x, mode, rng)?;
                Ok((out.features.clone(), Some(out)))
            }
            other => Ok((other.forward(x, mode, rng)?, None)),
        }
    }
}
