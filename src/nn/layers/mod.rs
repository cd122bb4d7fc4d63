//! Building blocks of the image backbones: gated channel transformation, 2D convolutions whose
//! autograd is trustworthy, and batch normalisation with PyTorch's running-statistics rule.

pub mod batch_norm2d;
pub mod conv2d;
pub mod gct;

pub use batch_norm2d::{BatchNorm2d, SSL_BN_EPS, SSL_BN_MOMENTUM};
pub use conv2d::Conv2d;
pub use gct::{Gct, GCT_EPS};

/// Deterministic test inputs in [-1, 1) (a multiplicative hash of index and seed), shared by
/// the layers' value and finite-difference tests.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32) -> Vec<f64> {
    (0..n as u32)
        .map(|i| {
            let h = (i ^ seed).wrapping_mul(2_654_435_761).rotate_left(13);
            (h % 2000) as f64 / 1000.0 - 1.0
        })
        .collect()
}
