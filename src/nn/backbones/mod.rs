//! Image feature extractors (`[B, C, H, W]` → `[B, features]`) for the semi-/unsupervised
//! methods; each implements [`crate::nn::Backbone`], heads are added by the methods.

pub mod cnn2d;
pub mod wrn;

pub use cnn2d::{SmallCnn, SMALL_CNN_FEATURES, SMALL_CNN_LAYERS};
pub use wrn::{Wrn28_2, WRN_FEATURES};

/// Which image backbone a run trains.
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
pub enum ImageBackbone {
    /// The CPU-sized CNN of the PyTorch speed anchor (5 conv layers 32-32-64-64-128).
    #[default]
    #[serde(rename = "small-cnn")]
    #[value(name = "small-cnn")]
    SmallCnn,
    /// Wide ResNet 28-2 (1.5 M parameters), the SSL literature's standard network.
    #[serde(rename = "wrn-28-2")]
    #[value(name = "wrn-28-2")]
    Wrn28_2,
}

impl ImageBackbone {
    /// The name on the command line and in config.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageBackbone::SmallCnn => "small-cnn",
            ImageBackbone::Wrn28_2 => "wrn-28-2",
        }
    }
}
