//! The feature-extractor seam: a [`Backbone`] maps inputs to feature vectors; task and domain
//! heads sit on top, and a method composes them. The CoDATS FCN ([`super::model::Fcn`]) is the
//! first backbone: the fast CPU kernels when they apply, the plain candle path otherwise.

use candle_core::{Result, Tensor};

/// How a forward pass treats batch normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training: batch statistics, and the running statistics are updated.
    Train,
    /// Batch statistics, running statistics left as they are (a teacher's forward, or a
    /// perturbed second forward such as VAT's, which must not count twice).
    TrainKeepStats,
    /// Evaluation: running statistics, no gradients.
    Eval,
}

impl Mode {
    /// Whether batch statistics are used (both training modes).
    pub fn batch_stats(self) -> bool {
        self != Mode::Eval
    }
}

/// A feature extractor `[B, …] → [B, feature_dim]`.
///
/// In the training modes gradients flow to the parameters and, when the input is (derived from) a
/// variable, to the input too: VAT and VADA ask for `∂loss/∂x` by passing `x` built from a
/// [`candle_core::Var`]; plain data gets no input gradient (the fast path then skips that work).
pub trait Backbone: Send + Sync + std::fmt::Debug {
    /// Width of the feature vector.
    fn feature_dim(&self) -> usize;
    /// Features of `x` in `mode`.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor>;
}
