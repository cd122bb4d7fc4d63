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
    /// Features of `x` in `mode` with stochastic depth (Huang et al. 2016, as EfficientNet's
    /// drop-connect, which Noisy Student uses): in a training mode, each residual block whose
    /// shortcut is the identity keeps its residual branch, per sample, with probability
    /// p_l = 1 − (l / L)(1 − `survival`) for block l of L (the linear decay rule; `survival`
    /// is the last block's), scaled by 1 / p_l when kept, so evaluation is unchanged. The
    /// draws come from `rng`. A backbone without residual blocks (the default) is
    /// [`Backbone::forward`] and draws nothing; so is `survival` ≥ 1 or [`Mode::Eval`].
    fn forward_stochastic_depth(
        &self,
        x: &Tensor,
        mode: Mode,
        survival: f64,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Tensor> {
        let _ = (survival, rng);
        self.forward(x, mode)
    }
}
