//! Layers and models: the CoDATS FCN feature extractor, its heads and the gradient-reversal layer.
//!
//! Everything here follows the CoDATS reference implementation (TensorFlow/Keras):
//! TF-style "same" padding, Glorot-uniform weights, zero biases, BatchNorm with the Keras
//! defaults (running-stat momentum 0.99, i.e. 0.01 in candle terms, ε = 1e-3).

pub mod backbone;
pub mod backbones;
pub mod dropout;
pub mod fast;
pub mod fast_cnn;
pub mod fast_fcn;
pub mod fast_head;
pub mod grl;
pub mod init;
pub mod layers;
pub mod model;
pub mod series;

pub use backbone::{Backbone, Mode};
pub use dropout::Dropout;
pub use grl::{grl_lambda, GradReverse};
pub use init::{glorot_init, kaiming_normal_init};
pub use model::{CodatsModel, Kernels, ModelConfig};
