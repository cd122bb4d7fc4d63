//! Image feature extractors (`[B, C, H, W]` → `[B, features]`) for the semi-/unsupervised
//! methods; each implements [`crate::nn::Backbone`], heads are added by the methods.

pub mod cnn2d;
pub mod wrn;

pub use cnn2d::{SmallCnn, SMALL_CNN_FEATURES, SMALL_CNN_LAYERS};
pub use wrn::{Wrn28_2, WRN_FEATURES};
