//! codats: deep domain adaptation for time-series sensor data (CoDATS and baselines) on CPU.
//!
//! Layers: [`data`] (loaders, splits, batching) → [`problem`] (sources + target of one run) →
//! [`methods`] (a [`methods::Method`] computes losses) → [`train`] (the loop, checkpoints,
//! metrics) → run directory. See `docs/ARCHITECTURE.md`.
pub mod alloc;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
#[doc(hidden)]
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod lockfile;
pub mod losses;
pub mod methods;
pub mod metrics;
pub mod nn;
pub mod problem;
pub mod profile;
pub mod report;
pub mod seed;
pub mod sweep;
pub mod train;
