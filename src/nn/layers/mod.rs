//! Building blocks of the image backbones: gated channel transformation, 2D convolutions whose
//! autograd is trustworthy, and batch normalisation with PyTorch's running-statistics rule.

pub mod batch_norm2d;
pub mod conv2d;
pub mod gct;

pub use batch_norm2d::{BatchNorm2d, SSL_BN_EPS, SSL_BN_MOMENTUM};
pub use conv2d::Conv2d;
pub use gct::{Gct, GCT_EPS};
