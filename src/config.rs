//! Run configuration: everything needed to reproduce a run, saved as `config.toml` in its directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::batch::BatchDivision;
use crate::data::registry::DataOptions;
use crate::methods::MethodKind;

/// Why a configuration is invalid.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// `--steps 0` and similar.
    #[error("--steps must be at least 1 (got {0})")]
    ZeroSteps(usize),
    /// Batch too small to give every domain a row.
    #[error("--batch-size {batch} gives {per} rows per domain with batch division {division} over {domains} domains; use a larger batch")]
    BatchTooSmall {
        batch: usize,
        per: usize,
        division: &'static str,
        domains: usize,
    },
    /// Learning rate not positive/finite.
    #[error("--lr must be a positive number (got {0})")]
    BadLearningRate(f64),
    /// `--eval-every 0`.
    #[error("--eval-every must be at least 1")]
    ZeroEvalEvery,
    /// Proportions with the wrong number of entries.
    #[error("--target-proportions has {got} values but the dataset has {want} classes")]
    ProportionsLength { got: usize, want: usize },
    /// A negative or non-finite proportion.
    #[error("--target-proportions value {0} is not a non-negative number")]
    ProportionNegative(f64),
    /// Proportions that do not sum to one.
    #[error("--target-proportions sum to {0:.6}, not 1 (±1e-6)")]
    ProportionsSum(f64),
    /// Proportions given to a method that does not use them.
    #[error("--target-proportions is only used by {users} (method is {method})")]
    ProportionsUnused { method: String, users: String },
    /// An unknown method parameter or a value out of its range.
    #[error("{0}")]
    MethodParam(String),
    /// A `--ws-noise` outside [0, 2].
    #[error(
        "--ws-noise must be a number in [0, 2], an L1 distance between distributions (got {0})"
    )]
    BadWsNoise(f64),
    /// `--ws-noise` given to a method that does not use proportions.
    #[error("--ws-noise is only used by {users} (method is {method})")]
    WsNoiseUnused { method: String, users: String },
}

/// A training run's settings. Serialises to `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Dataset name (`ucihar`).
    pub dataset: String,
    /// Folder holding the dataset's files, when given explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Source domain ids (domain label i + 1 for the i-th).
    pub sources: Vec<u32>,
    /// Target domain id (domain label 0).
    pub target: u32,
    /// Training method.
    pub method: MethodKind,
    /// Training steps.
    pub steps: usize,
    /// Total batch size per step, divided over domains by `batch_division`.
    pub batch_size: usize,
    /// How the batch is divided over domains.
    pub batch_division: BatchDivision,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed for initialisation, batching and dropout (vary it for repeats).
    pub seed: u64,
    /// Seed of the per-domain train/validation/test splits (kept fixed so that repeats and
    /// methods are compared on the same test windows).
    #[serde(default)]
    pub split_seed: u64,
    /// Evaluate on source/target validation every this many steps (and at the end).
    pub eval_every: usize,
    /// Write a resumable checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// DA-WS target label proportions; `None` = the target train split's proportions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_proportions: Option<Vec<f64>>,
    /// DA-WS: perturb the target proportions by this total amount (L1 distance) before use, then
    /// renormalise; deterministic from `seed` (robustness to wrong proportions). `None` = exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_noise: Option<f64>,
    /// CPU threads for tensor kernels.
    pub threads: usize,
    /// FCN implementation (`fast` hand-written CPU kernels, or plain `candle` ops).
    #[serde(default)]
    pub kernels: crate::nn::Kernels,
    /// codats version and git commit that produced the run (informational).
    pub code_version: String,
    /// Which of the reference's conventions the run follows ([`CONVENTIONS`] for new runs). A
    /// config.toml without the key was written before the fidelity fixes and means `1`:
    /// validation size round(0.2·n), `steps` updates evaluated after update i + 1. Version 2 is
    /// the reference's: validation size ⌈0.2·n⌉ (1000 when ⌊0.2·n⌋ > 1000) and `steps + 1`
    /// updates evaluated after update i when i % eval_every == 0 and at i = steps.
    #[serde(default = "legacy_conventions")]
    pub conventions: u32,
    /// The method's own parameters (`--param NAME=VALUE`), every one with its value (defaults
    /// filled in when the run was created); saved as `[method_params]`, absent for methods
    /// without parameters.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub method_params: std::collections::BTreeMap<String, f64>,
    /// Loader options (tabular columns and windows, synthetic settings, WISDM/HAPT switches), saved
    /// as `[data]` so that `codats eval` and `--resume` rebuild the same dataset.
    #[serde(default, skip_serializing_if = "DataOptions::is_empty")]
    pub data: DataOptions,
}

/// The conventions new runs follow (see [`TrainConfig::conventions`]).
pub const CONVENTIONS: u32 = 2;

fn legacy_conventions() -> u32 {
    1
}

/// This build's version string: crate version and git commit.
pub fn code_version() -> String {
    format!(
        "{} ({})",
        env!("CARGO_PKG_VERSION"),
        option_env!("CODATS_GIT_COMMIT").unwrap_or("unknown commit")
    )
}

impl TrainConfig {
    /// Optimiser updates a run of `steps` steps does: `steps + 1`, as the reference's
    /// `for i in range(steps + 1)`, whose first evaluation is after one update (`steps` for
    /// runs made with conventions 1).
    pub fn updates(&self) -> usize {
        if self.conventions >= 2 {
            self.steps + 1
        } else {
            self.steps
        }
    }

    /// The step number of the update with 0-based index `i`, as metrics.csv and result.json
    /// show it: the reference's index `i` (conventions 1: the count `i + 1`).
    pub fn step_label(&self, i: usize) -> usize {
        if self.conventions >= 2 {
            i
        } else {
            i + 1
        }
    }

    /// Whether the run evaluates (and may select) after the update with 0-based index `i`.
    pub fn evaluates_after(&self, i: usize) -> bool {
        let last = self.updates() - 1;
        self.step_label(i) % self.eval_every == 0 || i == last
    }

    /// How validation parts are sized in this run's splits.
    pub fn valid_size(&self) -> crate::data::split::ValidSize {
        if self.conventions >= 2 {
            crate::data::split::ValidSize::Sklearn
        } else {
            crate::data::split::ValidSize::Rounded
        }
    }

    /// Checks everything that does not need the data (see also [`TrainConfig::check_proportions`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.steps == 0 {
            return Err(ConfigError::ZeroSteps(0));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ConfigError::BadLearningRate(self.lr));
        }
        if self.eval_every == 0 {
            return Err(ConfigError::ZeroEvalEvery);
        }
        let needs = self.method.data_needs();
        let n_src = if needs.sources { self.sources.len() } else { 0 };
        let (per_source, per_target) = self
            .batch_division
            .sizes(self.batch_size, self.sources.len());
        let smallest = if needs.sources {
            per_source.min(per_target)
        } else {
            self.batch_size
        };
        if smallest < 2 {
            return Err(ConfigError::BatchTooSmall {
                batch: self.batch_size,
                per: smallest,
                division: self.batch_division.as_str(),
                domains: n_src + 1,
            });
        }
        self.method
            .resolve_params(&self.method_params)
            .map_err(ConfigError::MethodParam)?;
        let users = || {
            crate::methods::REGISTRY
                .iter()
                .filter(|m| m.uses_proportions)
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let uses = self.method.info().uses_proportions;
        if self.target_proportions.is_some() && !uses {
            return Err(ConfigError::ProportionsUnused {
                method: self.method.to_string(),
                users: users(),
            });
        }
        if let Some(noise) = self.ws_noise {
            if !(noise.is_finite() && (0.0..=2.0).contains(&noise)) {
                return Err(ConfigError::BadWsNoise(noise));
            }
            if !uses {
                return Err(ConfigError::WsNoiseUnused {
                    method: self.method.to_string(),
                    users: users(),
                });
            }
        }
        Ok(())
    }

    /// Validates DA-WS proportions against the number of classes.
    pub fn check_proportions(p: &[f64], classes: usize) -> Result<(), ConfigError> {
        if p.len() != classes {
            return Err(ConfigError::ProportionsLength {
                got: p.len(),
                want: classes,
            });
        }
        if let Some(&bad) = p.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(ConfigError::ProportionNegative(bad));
        }
        let s: f64 = p.iter().sum();
        if (s - 1.0).abs() > 1e-6 {
            return Err(ConfigError::ProportionsSum(s));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn cfg() -> TrainConfig {
        TrainConfig {
            dataset: "ucihar".into(),
            data_dir: None,
            sources: vec![1, 3, 5],
            target: 7,
            method: MethodKind::CODATS,
            steps: 100,
            batch_size: 128,
            batch_division: BatchDivision::All,
            lr: 1e-4,
            seed: 0,
            split_seed: 0,
            eval_every: 50,
            checkpoint_every: 50,
            conventions: CONVENTIONS,
            method_params: Default::default(),
            target_proportions: None,
            ws_noise: None,
            threads: 2,
            kernels: crate::nn::Kernels::Fast,
            code_version: code_version(),
            data: DataOptions::default(),
        }
    }

    #[test]
    fn config_round_trips_through_toml() {
        let mut c = cfg();
        c.method = MethodKind::CODATS_WS;
        c.target_proportions = Some(vec![0.5, 0.5]);
        let s = toml::to_string(&c).unwrap();
        assert!(s.contains("method = \"codats_ws\""), "{s}");
        assert!(s.contains("batch_division = \"all\""), "{s}");
        let back: TrainConfig = toml::from_str(&s).unwrap();
        assert_eq!(back, c);
        assert!(!s.contains("[data"), "{s}");
    }

    #[test]
    fn data_options_round_trip_as_a_data_table() {
        use crate::data::synthetic::SyntheticConfig;
        use crate::data::tabular::TabularOptions;
        use crate::data::window::{LabelRule, WindowSpec};
        let mut c = cfg();
        c.dataset = "tabular".into();
        c.data.tabular = Some(TabularOptions {
            domain_col: "subject".into(),
            label_col: "label".into(),
            channels: vec!["ax".into(), "ay".into()],
            time_col: None,
            group_col: Some("series_id".into()),
            window: WindowSpec {
                length: 64,
                stride: 32,
                label: LabelRule::Majority,
                reference_bounds: false,
            },
            sample_rate_hz: Some(50.0),
            zscore: true,
        });
        let s = toml::to_string(&c).unwrap();
        assert!(s.contains("[data.tabular]"), "{s}");
        let back: TrainConfig = toml::from_str(&s).unwrap();
        assert_eq!(back, c);
        let mut c = cfg();
        c.data.synthetic = Some(SyntheticConfig {
            domains: 4,
            ..Default::default()
        });
        c.data.wisdm_all_users = true;
        let s = toml::to_string(&c).unwrap();
        let back: TrainConfig = toml::from_str(&s).unwrap();
        assert_eq!(back, c);
        // Older config files without [data] still load.
        let old = toml::to_string(&cfg()).unwrap();
        let back: TrainConfig = toml::from_str(&old).unwrap();
        assert!(back.data.is_empty());
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let mut c = cfg();
        c.steps = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--steps must be at least 1 (got 0)"
        );
        let mut c = cfg();
        c.batch_size = 6;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--batch-size 6 gives 1 rows per domain with batch division all over 4 domains; use a larger batch"
        );
        let mut c = cfg();
        c.target_proportions = Some(vec![1.0]);
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--target-proportions is only used by codats_ws (method is codats)"
        );
    }

    #[test]
    fn proportions_are_validated() {
        let e = |p: &[f64]| {
            TrainConfig::check_proportions(p, 3)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(&[0.5, 0.5]),
            "--target-proportions has 2 values but the dataset has 3 classes"
        );
        assert_eq!(
            e(&[0.5, 0.6, -0.1]),
            "--target-proportions value -0.1 is not a non-negative number"
        );
        assert_eq!(
            e(&[0.5, 0.2, 0.2]),
            "--target-proportions sum to 0.900000, not 1 (±1e-6)"
        );
        assert_eq!(
            e(&[0.5, f64::NAN, 0.5]),
            "--target-proportions value NaN is not a non-negative number"
        );
        assert!(TrainConfig::check_proportions(&[0.2, 0.3, 0.5], 3).is_ok());
        assert!(TrainConfig::check_proportions(&[0.2, 0.3, 0.5000005], 3).is_ok());
    }
}
