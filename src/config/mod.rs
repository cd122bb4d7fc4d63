//! Run configuration: everything needed to reproduce a run, saved as `config.toml` in its directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod images;
pub use images::ImageOptions;

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
    /// `--checkpoint-every 0`.
    #[error("--checkpoint-every must be at least 1")]
    ZeroCheckpointEvery,
    /// `--threads 0`.
    #[error("--threads must be at least 1")]
    ZeroThreads,
    /// A batch whose training step cannot fit in this machine's memory.
    #[error("--batch-size {batch} needs about {need_gib:.0} GiB for one training step on windows of {length} samples; this machine has {have_gib:.0} GiB (measured: about 1 MiB per window of 128)")]
    BatchTooLarge {
        batch: usize,
        length: usize,
        need_gib: f64,
        have_gib: f64,
    },
    /// A method that trains on sources, given none.
    #[error("method {0} needs at least one source domain (--sources)")]
    NoSources(String),
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
    #[error("--target-proportions is only used by {users} or a method run with --ws (method is {method})")]
    ProportionsUnused { method: String, users: String },
    /// An unknown method parameter or a value out of its range.
    #[error("{0}")]
    MethodParam(String),
    /// A `--ws-noise` outside [0, 2].
    #[error(
        "--ws-noise must be a number in [0, 2], an L1 distance between distributions (got {0})"
    )]
    BadWsNoise(f64),
    /// A bad `[images]` value.
    #[error("{0}")]
    Images(String),
    /// A method of the other half of codats (an image method in `codats train`, or back).
    #[error("method {method} is {task}: {hint}")]
    WrongTask {
        method: String,
        task: &'static str,
        hint: &'static str,
    },
    /// `--gct` with the fast FCN kernels, which have no GCT.
    #[error("--gct runs on the plain candle path: use --kernels candle (the fast FCN kernels have no GCT)")]
    GctNeedsCandle,
    /// `--gct` or `--backbone wrn-28-2` on an image run with the fast kernels (the small CNN's,
    /// without gates).
    #[error("{what} runs on the plain candle path: use --kernels candle (the fast kernels are the small CNN's, without GCT)")]
    ImageNeedsCandle { what: &'static str },
    /// `--gct` with a time-series backbone other than the FCN (the gates are the FCN's).
    #[error("--gct gates the FCN's convolutions: it does not apply to --backbone {0}")]
    GctNeedsFcn(crate::nn::series::SeriesBackbone),
    /// A method defined with one feature extractor given another (`rdann` is the GRU's).
    #[error("method {method} is defined on --backbone {fixed}; for --backbone {given} use --method codats (or another method) with it")]
    BackboneFixed {
        method: String,
        fixed: crate::nn::series::SeriesBackbone,
        given: crate::nn::series::SeriesBackbone,
    },
    /// `--backbone vrnn` with a method other than VRADA (only VRADA trains the VRNN's ELBO).
    #[error("--backbone vrnn is VRADA's feature extractor, trained with its ELBO: use --method vrada (method {0} would drop that loss)")]
    VrnnIsVradas(String),
    /// A time-series `backbone` in an image run (image networks take `[images] backbone`).
    #[error("backbone {0} is a time-series feature extractor; an image run sets [images] backbone (`codats ssl train --backbone`)")]
    SeriesBackboneOnImages(crate::nn::series::SeriesBackbone),
    /// `few_shot` in an image run (its held-out validation images are the oracle's already).
    #[error("--few-shot selects a time-series adaptation run on labelled target windows; an image run has the oracle's validation images (best_target) instead")]
    FewShotOnImages,
    /// `gct` in an image run's top level (image networks take `[images] gct`).
    #[error("gct at the top level is the time-series FCN's; an image run sets [images] gct (`codats ssl train --gct`)")]
    GctOnImages,
    /// `--ws` with a method that has DA-WS already (`codats_ws`).
    #[error("--ws: method {0} has the DA-WS loss already (drop --ws)")]
    WsTwice(String),
    /// `--ws` with a method that trains on no unlabelled target (`none`, `target_only`, images).
    #[error("--ws adds DA-WS on the unlabelled target's predictions, and method {0} trains on no unlabelled target")]
    WsNeedsUnlabelledTarget(String),
    /// `--ws-noise` given to a method that does not use proportions.
    #[error("--ws-noise is only used by {users} or a method run with --ws (method is {method})")]
    WsNoiseUnused { method: String, users: String },
}

/// A training run's settings. Serialises to `config.toml`; check it into a [`CheckedConfig`]
/// ([`TrainConfig::check`]) before any work.
///
/// Files written before the `[method]` table (`method = "codats_ws"` at the top, with
/// `target_proportions`, `ws_noise` and `[method_params]` beside it) still load: see
/// [`ConfigFile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ConfigFile")]
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
    /// CPU threads for tensor kernels.
    pub threads: usize,
    /// FCN implementation (`fast` hand-written CPU kernels, or plain `candle` ops).
    #[serde(default)]
    pub kernels: crate::nn::Kernels,
    /// A GCT gate in front of each FCN convolution (`--gct`; time-series runs, plain candle
    /// path). Written only when set, so a file without it means false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gct: bool,
    /// The time-series feature extractor (`--backbone`). Written only when not the FCN, so a
    /// file without it means the FCN.
    #[serde(
        default,
        skip_serializing_if = "crate::nn::series::SeriesBackbone::is_default"
    )]
    pub backbone: crate::nn::series::SeriesBackbone,
    /// `--few-shot K`: the few-shot model-selection rule (`few_shot`) scores each evaluation on
    /// K labelled target windows per class drawn from the target's training split (the only
    /// target labels it sees; recorded in result.json). 0 (the default, left out of the file):
    /// no such rule.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub few_shot: usize,
    /// codats version and git commit that produced the run (informational).
    pub code_version: String,
    /// Which of the reference's conventions the run follows ([`CONVENTIONS`] for new runs). A
    /// config.toml without the key was written before the fidelity fixes and means `1`:
    /// validation size round(0.2·n), `steps` updates evaluated after update i + 1. Version 2 is
    /// the reference's: validation size ⌈0.2·n⌉ (1000 when ⌊0.2·n⌋ > 1000) and `steps + 1`
    /// updates evaluated after update i when i % eval_every == 0 and at i = steps.
    pub conventions: u32,
    /// The method and its own settings, saved as the `[method]` table.
    pub method: MethodConfig,
    /// Loader options (tabular columns and windows, synthetic settings, WISDM/HAPT switches), saved
    /// as `[data]` so that `codats eval` and `--resume` rebuild the same dataset.
    #[serde(default, skip_serializing_if = "DataOptions::is_empty")]
    pub data: DataOptions,
    /// An image run's pools, network and SGD recipe (`codats ssl train`), saved as `[images]`;
    /// absent for time-series runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageOptions>,
}

/// The method of a run and its own settings: config.toml's `[method]` table,
///
/// ```toml
/// [method]
/// name = "codats_ws"
/// target_proportions = [0.2, 0.8]   # DA-WS methods only; absent = the target's own
/// ws_noise = 0.1                    # DA-WS methods only
/// ws = true                         # `--ws`: DA-WS on top of any adaptation method; absent = off
/// coral_weight = 1.0                # the method's parameters (`codats methods`), every one
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MethodConfig {
    /// Which registered method.
    pub name: MethodKind,
    /// DA-WS target label proportions; `None` = the target train split's proportions.
    pub target_proportions: Option<Vec<f64>>,
    /// DA-WS: perturb the target proportions by this total amount (L1 distance) before use, then
    /// renormalise; deterministic from `seed` (robustness to wrong proportions). `None` = exact.
    pub ws_noise: Option<f64>,
    /// `--ws`: add the DA-WS loss to the method's own ([`crate::methods::ws`]). Saved only when
    /// on, so configs of runs without it are unchanged.
    pub ws: bool,
    /// The method's own parameters (`--param NAME=VALUE`); after [`TrainConfig::check`] every
    /// one with its value (the paper's default where none was given).
    pub params: BTreeMap<String, f64>,
}

impl MethodConfig {
    /// `name` with no settings of its own given (defaults everywhere).
    pub fn new(name: MethodKind) -> Self {
        Self {
            name,
            target_proportions: None,
            ws_noise: None,
            ws: false,
            params: BTreeMap::new(),
        }
    }

    /// Whether the run trains with DA-WS: the method's own (`codats_ws`) or `--ws`.
    pub fn uses_proportions(&self) -> bool {
        self.name.info().uses_proportions || self.ws
    }

    /// Whether `--ws` applies to `kind`: an adaptation method on the unlabelled target that has
    /// no DA-WS loss of its own.
    pub fn takes_ws(kind: MethodKind) -> bool {
        let info = kind.info();
        !info.uses_proportions
            && info.task == crate::methods::Task::Adaptation
            && info.needs.target == crate::methods::TargetUse::Unlabelled
    }
}

/// Keys of the `[method]` table that are not method parameters.
const METHOD_KEYS: [&str; 4] = ["name", "target_proportions", "ws_noise", "ws"];

impl Serialize for MethodConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        if let Some(p) = &self.target_proportions {
            m.serialize_entry("target_proportions", p)?;
        }
        if let Some(n) = &self.ws_noise {
            m.serialize_entry("ws_noise", n)?;
        }
        if self.ws {
            m.serialize_entry("ws", &true)?;
        }
        for (k, v) in &self.params {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for MethodConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MethodConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a [method] table with `name`, or a method name")
            }
            // Files written before the [method] table: `method = "codats"`.
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<MethodConfig, E> {
                let kind = MethodKind::parse(name).ok_or_else(|| {
                    E::custom(format!(
                        "unknown method {name:?}; valid methods: {}",
                        MethodKind::names()
                    ))
                })?;
                Ok(MethodConfig::new(kind))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MethodConfig, A::Error> {
                use serde::de::Error;
                let (mut name, mut proportions, mut noise, mut ws) = (None, None, None, None);
                let mut params = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let dup = match key.as_str() {
                        "name" => name.replace(map.next_value::<MethodKind>()?).is_some(),
                        "target_proportions" => {
                            proportions.replace(map.next_value::<Vec<f64>>()?).is_some()
                        }
                        "ws_noise" => noise.replace(map.next_value::<f64>()?).is_some(),
                        "ws" => ws.replace(map.next_value::<bool>()?).is_some(),
                        _ => {
                            let v = map
                                .next_value::<f64>()
                                .map_err(|e| A::Error::custom(format!("[method] {key}: {e}")))?;
                            params.insert(key.clone(), v).is_some()
                        }
                    };
                    if dup {
                        return Err(A::Error::custom(format!("[method] {key} is given twice")));
                    }
                }
                let name = name.ok_or_else(|| {
                    A::Error::custom(format!(
                        "[method] needs `name` (one of: {})",
                        MethodKind::names()
                    ))
                })?;
                Ok(MethodConfig {
                    name,
                    target_proportions: proportions,
                    ws_noise: noise,
                    ws: ws.unwrap_or(false),
                    params,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// config.toml as written by any codats version: today's layout, or the one before the
/// `[method]` table, whose method settings sat at the top level and in `[method_params]`.
/// Reading goes through this type and then into [`TrainConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    dataset: String,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    sources: Vec<u32>,
    target: u32,
    method: MethodConfig,
    steps: usize,
    batch_size: usize,
    batch_division: BatchDivision,
    lr: f64,
    seed: u64,
    #[serde(default)]
    split_seed: u64,
    eval_every: usize,
    checkpoint_every: usize,
    threads: usize,
    #[serde(default)]
    kernels: crate::nn::Kernels,
    #[serde(default)]
    gct: bool,
    #[serde(default)]
    backbone: crate::nn::series::SeriesBackbone,
    #[serde(default)]
    few_shot: usize,
    code_version: String,
    #[serde(default = "legacy_conventions")]
    conventions: u32,
    #[serde(default)]
    data: DataOptions,
    #[serde(default)]
    images: Option<ImageOptions>,
    // The layout before the [method] table.
    #[serde(default)]
    target_proportions: Option<Vec<f64>>,
    #[serde(default)]
    ws_noise: Option<f64>,
    #[serde(default)]
    method_params: BTreeMap<String, f64>,
}

impl TryFrom<ConfigFile> for TrainConfig {
    type Error = String;
    fn try_from(f: ConfigFile) -> Result<Self, String> {
        let mut method = f.method;
        let twice = |key: &str| format!("{key} is given both at the top level and in [method]");
        if let Some(p) = f.target_proportions {
            if method.target_proportions.replace(p).is_some() {
                return Err(twice("target_proportions"));
            }
        }
        if let Some(n) = f.ws_noise {
            if method.ws_noise.replace(n).is_some() {
                return Err(twice("ws_noise"));
            }
        }
        for (k, v) in f.method_params {
            if METHOD_KEYS.contains(&k.as_str()) || method.params.insert(k.clone(), v).is_some() {
                return Err(format!("[method_params] {k} is also given in [method]"));
            }
        }
        Ok(TrainConfig {
            dataset: f.dataset,
            data_dir: f.data_dir,
            sources: f.sources,
            target: f.target,
            steps: f.steps,
            batch_size: f.batch_size,
            batch_division: f.batch_division,
            lr: f.lr,
            seed: f.seed,
            split_seed: f.split_seed,
            eval_every: f.eval_every,
            checkpoint_every: f.checkpoint_every,
            threads: f.threads,
            kernels: f.kernels,
            gct: f.gct,
            backbone: f.backbone,
            few_shot: f.few_shot,
            code_version: f.code_version,
            conventions: f.conventions,
            method,
            data: f.data,
            images: f.images,
        })
    }
}

/// A [`TrainConfig`] that has passed [`TrainConfig::check`]: every value in range and the
/// method's parameters complete. The trainer, `eval` and the method builders take only this.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct CheckedConfig(TrainConfig);

impl std::ops::Deref for CheckedConfig {
    type Target = TrainConfig;
    fn deref(&self) -> &TrainConfig {
        &self.0
    }
}

/// Bytes one window of 128 samples costs in a training step of the FCN (peak RSS grew by
/// ≈ 1 MiB per window between batch 128 and 512, docs/PERFORMANCE.md).
const STEP_BYTES_PER_WINDOW_128: f64 = 1024.0 * 1024.0;

/// Total memory of this machine (Linux `/proc/meminfo`), if known.
fn total_memory_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

impl CheckedConfig {
    /// Refuses a batch whose training step on windows of `length` samples would need more than
    /// this machine's memory (instead of aborting on allocation mid-run).
    pub fn check_memory(&self, length: usize) -> Result<(), ConfigError> {
        let Some(have) = total_memory_bytes() else {
            return Ok(());
        };
        let need = self.batch_size as f64 * STEP_BYTES_PER_WINDOW_128 * length as f64 / 128.0;
        if need > have {
            const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
            return Err(ConfigError::BatchTooLarge {
                batch: self.batch_size,
                length,
                need_gib: need / GIB,
                have_gib: have / GIB,
            });
        }
        Ok(())
    }

    /// The settings, to edit and check again.
    pub fn into_inner(self) -> TrainConfig {
        self.0
    }

    /// Edits the settings without checking them again (tests only).
    #[cfg(test)]
    pub(crate) fn edit(&mut self) -> &mut TrainConfig {
        &mut self.0
    }
}

/// `codats train`'s defaults (the paper's), also what a sweep spec's job gets for a key it
/// does not set.
pub mod defaults {
    /// Training steps (the paper's 30 000).
    pub const STEPS: usize = 30_000;
    /// Total batch size per step.
    pub const BATCH: usize = 128;
    /// Adam learning rate.
    pub const LR: f64 = 1e-4;
    /// Evaluation interval in steps.
    pub const EVAL_EVERY: usize = 500;

    /// `codats ssl train`'s defaults (a CPU-sized FixMatch run), also what a sweep spec's image
    /// job gets for a key it does not set; the `[images]` ones are [`super::ImageOptions::fixmatch`].
    pub mod images {
        /// Training steps.
        pub const STEPS: usize = 2000;
        /// Labelled images per step (B).
        pub const BATCH: usize = 64;
        /// SGD learning rate.
        pub const LR: f64 = 0.03;
        /// Evaluation interval in steps.
        pub const EVAL_EVERY: usize = 100;
    }
}

/// A run's id, its default directory name under `runs/` and a sweep job's id:
/// `<dataset>-<method>-<sources joined by _, or none>-to-<target>[-<variant>…]-s<seed>`, where
/// each variant label `key=value` is written `keyvalue` (`codats_ws-1_2-to-4-ws_noise0.25-s3`).
pub fn run_id(
    dataset: &str,
    method: MethodKind,
    sources: &[u32],
    target: u32,
    variant: &[String],
    seed: u64,
) -> String {
    let srcs = if sources.is_empty() {
        "none".to_string()
    } else {
        sources
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("_")
    };
    let suffix = variant_suffix(variant);
    format!("{dataset}-{method}-{srcs}-to-{target}{suffix}-s{seed}")
}

/// `-key1value1-key2value2` of variant labels `key=value`.
fn variant_suffix(variant: &[String]) -> String {
    variant
        .iter()
        .map(|l| format!("-{}", l.replace('=', "")))
        .collect()
}

/// An image run's id, its default directory name under `runs/` and a sweep job's id:
/// `<dataset>-<method>-l<labels per class>[-<variant>…]-s<seed>` (`digits-fixmatch-l5-s0`),
/// variant labels written as in [`run_id`].
pub fn image_run_id(
    dataset: &str,
    method: MethodKind,
    labels_per_class: usize,
    variant: &[String],
    seed: u64,
) -> String {
    let suffix = variant_suffix(variant);
    format!("{dataset}-{method}-l{labels_per_class}{suffix}-s{seed}")
}

/// The conventions new runs follow (see [`TrainConfig::conventions`]).
pub const CONVENTIONS: u32 = 2;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

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

    /// Checks everything that does not need the data, once, before any work, and fills in the
    /// method's parameter defaults (see also [`TrainConfig::check_proportions`], which needs
    /// the number of classes). A bad value is a one-line error naming its flag or key.
    pub fn check(mut self) -> Result<CheckedConfig, ConfigError> {
        if self.steps == 0 {
            return Err(ConfigError::ZeroSteps(0));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ConfigError::BadLearningRate(self.lr));
        }
        if self.eval_every == 0 {
            return Err(ConfigError::ZeroEvalEvery);
        }
        if self.checkpoint_every == 0 {
            return Err(ConfigError::ZeroCheckpointEvery);
        }
        if self.threads == 0 {
            return Err(ConfigError::ZeroThreads);
        }
        if self.gct && self.images.is_some() {
            return Err(ConfigError::GctOnImages);
        }
        if self.gct && !self.backbone.is_default() {
            return Err(ConfigError::GctNeedsFcn(self.backbone));
        }
        if self.gct && self.kernels == crate::nn::Kernels::Fast {
            return Err(ConfigError::GctNeedsCandle);
        }
        if self.backbone == crate::nn::series::SeriesBackbone::Vrnn
            && self.method.name.info().backbone != Some(self.backbone)
        {
            return Err(ConfigError::VrnnIsVradas(self.method.name.to_string()));
        }
        if let Some(fixed) = self.method.name.info().backbone {
            if fixed != self.backbone {
                return Err(ConfigError::BackboneFixed {
                    method: self.method.name.to_string(),
                    fixed,
                    given: self.backbone,
                });
            }
        }
        if !self.backbone.is_default() && self.images.is_some() {
            return Err(ConfigError::SeriesBackboneOnImages(self.backbone));
        }
        if self.few_shot > 0 && self.images.is_some() {
            return Err(ConfigError::FewShotOnImages);
        }
        let kind = self.method.name;
        match (kind.info().task, &self.images) {
            (crate::methods::Task::Images, None) => {
                return Err(ConfigError::WrongTask {
                    method: kind.to_string(),
                    task: "an image method",
                    hint: "train it with `codats ssl train` (`codats methods` lists both halves)",
                })
            }
            (crate::methods::Task::Adaptation, Some(_)) => {
                return Err(ConfigError::WrongTask {
                    method: kind.to_string(),
                    task: "a time-series adaptation method",
                    hint:
                        "train it with `codats train`; `codats ssl train` takes the image methods",
                })
            }
            (_, Some(images)) => {
                images.check().map_err(ConfigError::Images)?;
                if self.dataset != "image_folder" {
                    let given = match (images.resize, images.color) {
                        (Some([w, h]), _) => Some(format!("--resize {w}x{h}")),
                        (None, c) if !c.is_gray() => Some(format!("--color {}", c.as_str())),
                        _ => None,
                    };
                    if let Some(flag) = given {
                        return Err(ConfigError::Images(format!(
                            "{flag} applies to image_folder only ({} has one published size and \
                             colour)",
                            self.dataset
                        )));
                    }
                }
                if images.labels_per_class == 0 && kind.data_needs().sources {
                    let without: Vec<&str> = crate::methods::MethodKind::all()
                        .into_iter()
                        .filter(|m| m.info().task == crate::methods::Task::Images)
                        .filter(|m| !m.data_needs().sources)
                        .map(|m| m.as_str())
                        .collect();
                    return Err(ConfigError::Images(format!(
                        "--labels-per-class 0: method {kind} trains on labelled images (0 is for \
                         the methods without a labelled pool: {})",
                        without.join(", ")
                    )));
                }
                let learns_from_teacher =
                    kind.as_str() == crate::methods::ssl::noisy_student::NOISY_STUDENT.name;
                if let Some(t) = &images.teacher {
                    if !learns_from_teacher {
                        return Err(ConfigError::Images(format!(
                            "--teacher: method {kind} learns from no teacher (noisy_student does)"
                        )));
                    }
                    if t.gct && self.kernels == crate::nn::Kernels::Fast {
                        return Err(ConfigError::ImageNeedsCandle {
                            what: "a teacher with GCT",
                        });
                    }
                }
                if self.kernels == crate::nn::Kernels::Fast {
                    if images.gct {
                        return Err(ConfigError::ImageNeedsCandle { what: "--gct" });
                    }
                    if images.backbone != images::ImageBackbone::SmallCnn {
                        return Err(ConfigError::ImageNeedsCandle {
                            what: "--backbone wrn-28-2",
                        });
                    }
                }
            }
            (_, None) => {}
        }
        let needs = kind.data_needs();
        if needs.sources && self.sources.is_empty() {
            return Err(ConfigError::NoSources(kind.to_string()));
        }
        let n_src = if needs.sources { self.sources.len() } else { 0 };
        let (per_source, per_target) = self
            .batch_division
            .sizes(self.batch_size, self.sources.len());
        let smallest = if self.images.is_some() {
            self.batch_size
        } else if needs.sources {
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
        self.method.params = kind
            .resolve_params(&self.method.params)
            .map_err(ConfigError::MethodParam)?;
        let users = || {
            crate::methods::REGISTRY
                .iter()
                .filter(|m| m.uses_proportions)
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.method.ws {
            if kind.info().uses_proportions {
                return Err(ConfigError::WsTwice(kind.to_string()));
            }
            if kind.info().task != crate::methods::Task::Adaptation
                || needs.target != crate::methods::TargetUse::Unlabelled
            {
                return Err(ConfigError::WsNeedsUnlabelledTarget(kind.to_string()));
            }
        }
        let uses = self.method.uses_proportions();
        if self.method.target_proportions.is_some() && !uses {
            return Err(ConfigError::ProportionsUnused {
                method: kind.to_string(),
                users: users(),
            });
        }
        if let Some(noise) = self.method.ws_noise {
            if !(noise.is_finite() && (0.0..=2.0).contains(&noise)) {
                return Err(ConfigError::BadWsNoise(noise));
            }
            if !uses {
                return Err(ConfigError::WsNoiseUnused {
                    method: kind.to_string(),
                    users: users(),
                });
            }
        }
        Ok(CheckedConfig(self))
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
            method: MethodConfig::new(MethodKind::CODATS),
            steps: 100,
            batch_size: 128,
            batch_division: BatchDivision::All,
            lr: 1e-4,
            seed: 0,
            split_seed: 0,
            eval_every: 50,
            checkpoint_every: 50,
            conventions: CONVENTIONS,
            threads: 2,
            kernels: crate::nn::Kernels::Fast,
            gct: false,
            backbone: Default::default(),
            few_shot: 0,
            code_version: code_version(),
            data: DataOptions::default(),
            images: None,
        }
    }

    #[test]
    fn gct_is_written_only_when_on_and_needs_the_candle_kernels() {
        // Off: the file is what it was before the key existed, and reads back as off.
        let c = cfg();
        let s = toml::to_string(&c).unwrap();
        assert!(!s.contains("gct"), "{s}");
        assert!(!toml::from_str::<TrainConfig>(&s).unwrap().gct);
        // On: saved, read back, and refused with the fast kernels.
        let mut c = cfg();
        c.gct = true;
        c.kernels = crate::nn::Kernels::Candle;
        let s = toml::to_string(&c).unwrap();
        assert!(s.contains("\ngct = true\n"), "{s}");
        assert_eq!(toml::from_str::<TrainConfig>(&s).unwrap(), c);
        assert!(c.clone().check().is_ok());
        c.kernels = crate::nn::Kernels::Fast;
        assert_eq!(c.check().unwrap_err(), ConfigError::GctNeedsCandle);
    }

    #[test]
    fn config_round_trips_through_toml() {
        let mut c = cfg();
        c.method = MethodConfig::new(MethodKind::CODATS_WS);
        c.method.target_proportions = Some(vec![0.5, 0.5]);
        c.method.ws_noise = Some(0.1);
        let s = toml::to_string(&c).unwrap();
        assert!(
            s.contains(
                "[method]\nname = \"codats_ws\"\ntarget_proportions = [0.5, 0.5]\nws_noise = 0.1\n"
            ),
            "{s}"
        );
        assert!(s.contains("batch_division = \"all\""), "{s}");
        let back: TrainConfig = toml::from_str(&s).unwrap();
        assert_eq!(back, c);
        assert!(!s.contains("[data"), "{s}");
        // A method's parameters sit in its table, every one after `check`.
        let mut c = cfg();
        c.method = MethodConfig::new(MethodKind::parse("coral").unwrap());
        let c = c.check().unwrap();
        let s = toml::to_string(&c).unwrap();
        assert!(
            s.contains("[method]\nname = \"coral\"\ncoral_weight = 1.0\n"),
            "{s}"
        );
        let back: TrainConfig = toml::from_str(&s).unwrap();
        assert_eq!(&back, &*c);
    }

    /// config.toml as codats wrote it before the `[method]` table (commit 425d365).
    const OLD_LAYOUT: &str = r#"dataset = "ucihar"
sources = [1, 3]
target = 7
method = "codats_ws"
steps = 100
batch_size = 128
batch_division = "sources"
lr = 0.0001
seed = 0
split_seed = 0
eval_every = 50
checkpoint_every = 50
target_proportions = [0.25, 0.75]
ws_noise = 0.1
threads = 2
kernels = "fast"
code_version = "0.1.0 (425d365)"
conventions = 2
"#;

    #[test]
    fn config_files_of_the_layout_before_the_method_table_still_load() {
        let c: TrainConfig = toml::from_str(OLD_LAYOUT).unwrap();
        assert_eq!(c.method.name, MethodKind::CODATS_WS);
        assert_eq!(c.method.target_proportions, Some(vec![0.25, 0.75]));
        assert_eq!(c.method.ws_noise, Some(0.1));
        let c = c.check().unwrap();
        // Written back in today's layout, it reads the same.
        let back: TrainConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(&back, &*c);
        let coral = OLD_LAYOUT
            .replace("\"codats_ws\"", "\"coral\"")
            .replace("target_proportions = [0.25, 0.75]\nws_noise = 0.1\n", "")
            + "\n[method_params]\ncoral_weight = 0.5\n";
        let c: TrainConfig = toml::from_str(&coral).unwrap();
        assert_eq!(c.method.params, [("coral_weight".to_string(), 0.5)].into());
        // Conventions default to 1 in files without the key.
        let c: TrainConfig = toml::from_str(&OLD_LAYOUT.replace("conventions = 2\n", "")).unwrap();
        assert_eq!(c.conventions, 1);
    }

    #[test]
    fn a_bad_method_table_is_a_one_line_error_naming_the_key() {
        let new = toml::to_string(&cfg()).unwrap();
        let err = |text: &str| {
            let e = toml::from_str::<TrainConfig>(text).unwrap_err();
            e.message().lines().next().unwrap_or("").to_string()
        };
        assert_eq!(
            err(&new.replace("name = \"codats\"", "")),
            format!("[method] needs `name` (one of: {})", MethodKind::names())
        );
        assert_eq!(
            err(&format!("{new}coral_weight = \"big\"\n")),
            "[method] coral_weight: invalid type: string \"big\", expected f64"
        );
        assert_eq!(
            err(&new.replace("\"codats\"", "\"dann\"")),
            format!(
                "unknown method \"dann\"; valid methods: {}",
                MethodKind::names()
            )
        );
        let top: String = OLD_LAYOUT
            .lines()
            .filter(|l| {
                !l.starts_with("method") && !l.starts_with("target_pro") && !l.starts_with("ws_")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            err(&format!("{top}[method]\nname = \"coral\"\ncoral_weight = 2\n\n[method_params]\ncoral_weight = 1\n")),
            "[method_params] coral_weight is also given in [method]"
        );
        // An unknown parameter is refused by `check`, naming it and the method's own.
        let mut c = cfg();
        c.method.params.insert("x".into(), 1.0);
        assert_eq!(
            c.check().unwrap_err().to_string(),
            "--param x: method codats has no parameter `x` (its parameters: none)"
        );
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
        let e = |edit: &dyn Fn(&mut TrainConfig)| {
            let mut c = cfg();
            edit(&mut c);
            c.check().unwrap_err().to_string()
        };
        assert_eq!(e(&|c| c.steps = 0), "--steps must be at least 1 (got 0)");
        assert_eq!(
            e(&|c| c.batch_size = 6),
            "--batch-size 6 gives 1 rows per domain with batch division all over 4 domains; use a larger batch"
        );
        assert_eq!(
            e(&|c| c.method.target_proportions = Some(vec![1.0])),
            "--target-proportions is only used by codats_ws or a method run with --ws (method is codats)"
        );
        assert_eq!(
            e(&|c| c.checkpoint_every = 0),
            "--checkpoint-every must be at least 1"
        );
        assert_eq!(e(&|c| c.threads = 0), "--threads must be at least 1");
        assert_eq!(
            e(&|c| c.sources.clear()),
            "method codats needs at least one source domain (--sources)"
        );
        assert_eq!(
            e(&|c| {
                c.method.name = MethodKind::CODATS_WS;
                c.method.ws_noise = Some(5.0)
            }),
            "--ws-noise must be a number in [0, 2], an L1 distance between distributions (got 5)"
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
