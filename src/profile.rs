//! Where a training step's time goes: wall-clock time per phase, summed over steps, shown by
//! `codats bench --phases`. A span costs two clock reads; the counters are process-wide.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The timed parts of a training step. The first three partition the step; the others are
/// parts of them (the fast kernels' own work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The method's forward pass and losses (`Method::step`).
    Forward,
    /// The backward pass (`loss.backward()`).
    Backward,
    /// The optimiser updates.
    Optimiser,
    /// Convolution GEMMs of the fast kernels: forward, weight and input gradients.
    Conv,
    /// The fused FCN's batch norm + ReLU passes in the forward pass (statistics, normalisation).
    BnForward,
    /// The fused FCN's batch norm + ReLU passes in the backward pass.
    BnBackward,
    /// The fused domain head, forward.
    HeadForward,
    /// The fused domain head, backward.
    HeadBackward,
    /// Weak/strong image views of a batch (before the step; not part of `forward`).
    Augment,
}

const N: usize = 9;

impl Phase {
    /// Every phase, in report order.
    pub const ALL: [Phase; N] = [
        Phase::Forward,
        Phase::Backward,
        Phase::Optimiser,
        Phase::Conv,
        Phase::BnForward,
        Phase::BnBackward,
        Phase::HeadForward,
        Phase::HeadBackward,
        Phase::Augment,
    ];

    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Optimiser => "optimiser",
            Phase::Conv => "conv",
            Phase::BnForward => "bn_forward",
            Phase::BnBackward => "bn_backward",
            Phase::HeadForward => "head_forward",
            Phase::HeadBackward => "head_backward",
            Phase::Augment => "augment",
        }
    }
}

static NANOS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Adds the time until it is dropped to its phase.
#[must_use = "the span times until it is dropped"]
pub struct Span {
    phase: Phase,
    start: Instant,
}

/// Starts timing `phase`.
pub fn span(phase: Phase) -> Span {
    Span {
        phase,
        start: Instant::now(),
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let ns = self.start.elapsed().as_nanos() as u64;
        NANOS[self.phase as usize].fetch_add(ns, Ordering::Relaxed);
    }
}

/// Time spent in `phase` since the last [`reset`].
pub fn total(phase: Phase) -> Duration {
    Duration::from_nanos(NANOS[phase as usize].load(Ordering::Relaxed))
}

/// Zeroes every phase.
pub fn reset() {
    NANOS.iter().for_each(|n| n.store(0, Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_add_up_per_phase_and_reset_clears() {
        reset();
        {
            let _s = span(Phase::HeadBackward);
            std::thread::sleep(Duration::from_millis(2));
        }
        let t = total(Phase::HeadBackward);
        assert!(t >= Duration::from_millis(2), "{t:?}");
        reset();
        assert_eq!(total(Phase::HeadBackward), Duration::ZERO);
    }
}
