//! Inverted dropout driven by the run's own seeded RNG, so runs are reproducible and resumable
//! (candle's CPU device RNG cannot be seeded).

use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Inverted dropout with drop probability `p` (scales kept units by 1/(1−p) in training).
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    /// Probability of dropping a unit.
    pub p: f32,
}

impl Dropout {
    /// Applies dropout in training mode (mask drawn from `rng`); identity in eval mode.
    pub fn forward(&self, x: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let Some(rng) = rng else { return Ok(x.clone()) };
        match self.mask(x.elem_count(), rng) {
            Some(mask) => x * Tensor::from_vec(mask, x.shape(), x.device())?,
            None => Ok(x.clone()),
        }
    }

    /// The multiplicative mask for `n` units — 0 (dropped) or 1/(1−p) — drawn from `rng`, one
    /// number per unit; `None` (and nothing drawn) when `p` ≤ 0.
    pub fn mask(&self, n: usize, rng: &mut ChaCha8Rng) -> Option<Vec<f32>> {
        if self.p <= 0.0 {
            return None;
        }
        let scale = 1.0 / (1.0 - self.p);
        Some(
            (0..n)
                .map(|_| {
                    if rng.random::<f32>() < self.p {
                        0.0
                    } else {
                        scale
                    }
                })
                .collect(),
        )
    }
}
