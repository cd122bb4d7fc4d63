//! Domain adaptation methods (and their bounds) on the time-series FCN: one file per method,
//! each registered once in [`crate::methods::REGISTRY`].
//!
//! | file | methods |
//! |---|---|
//! | [`supervised`] | `none` (source only), `target_only` (train on target) |
//! | [`codats`] | `codats`, `codats_ws` (Wilson et al., KDD 2020) |
//! | [`coral`] | `coral` (Deep CORAL, Sun & Saenko 2016) |
//! | [`dann_gs`] | `dann_gs` (DANN over grouped sources, the CoDATS paper's baseline) |
//! | [`mmd`] | `mmd` (DDC-style multi-kernel MMD) |
//! | [`mdan`] | `mdan` (MDAN-smooth, Zhao et al. 2018) |
//! | [`cdan`] | `cdan` (CDAN and CDAN+E, Long et al. 2018) |
//! | [`homm`] | `homm` (HoMM, third-order moment matching, Chen et al. 2020) |
//! | [`dsan`] | `dsan` (DSAN's local MMD, Zhu et al. 2020) |
//! | [`dirt_t`] | `dirt_t` (VADA, then DIRT-T refinement, Shu et al. 2018) |
//! | [`advskm`] | `advskm` (AdvSKM, adversarial spectral kernel matching, Liu & Xue 2021) |
//!
//! [`align`] is what the feature-alignment methods (CORAL, MMD, HoMM) share.

pub mod advskm;
pub mod align;
pub mod cdan;
pub mod codats;
pub mod coral;
pub mod dann_gs;
pub mod dirt_t;
pub mod dsan;
pub mod homm;
pub mod mdan;
pub mod mmd;
pub mod supervised;
