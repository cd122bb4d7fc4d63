//! codats: deep domain adaptation for time-series sensor data (CoDATS and baselines) on CPU.
pub mod data;
