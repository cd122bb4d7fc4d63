//! The published formats, one file each, behind one trait: [`Format`] says which files in a folder
//! hold a dataset and parses them into a [`Dataset`]; the registry picks the format of a
//! `--dataset` name once and does the rest (finding the folder, downloading, the cache) for all.
//!
//! | file | format | datasets |
//! |---|---|---|
//! | [`ucihar`] | UCI HAR Inertial Signals (zip or folder), windows as published | `ucihar` |
//! | [`hhar`] | UCI HHAR phones accelerometer CSV | `ucihhar` |
//! | [`wisdm`] | WISDM raw `user,activity,timestamp,x,y,z;` records (tar.gz or file) | `wisdm_ar`, `wisdm_at` |
//! | [`uwave`] | uWave gesture files, one example each | `uwave` |
//! | [`hapt`] | UCI HAPT raw signals and labelled segments | `ucihapt` |
//! | [`tabular`] | the user's long-format CSV / CSV.gz / Parquet | `tabular` |
//! | [`synthetic`] | generated sum-of-sines activities (no files) | `synthetic` |
//!
//! [`finish`] holds what the windowed loaders share: their card tables, and the ending that turns
//! each domain's windows into the dataset.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::card::Card;
use super::report::LoadReport;
use super::{download, DataError, Dataset};

pub mod finish;
pub mod hapt;
pub mod hhar;
pub mod synthetic;
pub mod tabular;
pub mod ucihar;
pub mod uwave;
pub mod wisdm;

use synthetic::SyntheticConfig;
use tabular::TabularOptions;

/// One published format: where its files are in a folder, and how to parse them.
///
/// `card` is the dataset's card (WISDM AR and AT share a format and differ by card); `dir` is the
/// dataset's folder (or file) as the registry found it.
pub trait Format: Sync {
    /// The files in `dir` whose contents determine the windows (hashed for the cache key), found
    /// without parsing them; an error says what is missing.
    fn inputs(&self, card: &Card, dir: &Path) -> Result<Vec<PathBuf>, DataError>;

    /// Parses the dataset in `dir` (no cache) and says what was read and skipped.
    fn parse(
        &self,
        card: &Card,
        dir: &Path,
        opts: &DataOptions,
    ) -> Result<(Dataset, LoadReport), DataError>;

    /// The options that change this format's windows, as text for the cache key.
    fn params(&self, _opts: &DataOptions) -> String {
        String::new()
    }

    /// Checks what this format needs of `opts` (the registry has already refused other formats'
    /// options).
    fn check(&self, _opts: &DataOptions) -> Result<(), DataError> {
        Ok(())
    }

    /// Channel names in window order, and the sampling rate in words.
    fn describe(&self, card: &Card, _opts: &DataOptions) -> (Vec<String>, String) {
        (card.channels.clone(), card.sample_rate_text())
    }

    /// Downloads the published archive into `dir` (verified, atomically) unless it is already
    /// there; returns its path.
    fn download(&self, card: &Card, dir: &Path, progress: bool) -> Result<PathBuf, DataError> {
        download::ensure_archive(card, dir, progress)
    }

    /// For generated data only: the dataset and its report, which the registry then takes instead
    /// of finding, parsing and caching files.
    fn generate(
        &self,
        _card: &Card,
        _opts: &DataOptions,
    ) -> Option<Result<(Dataset, LoadReport), DataError>> {
        None
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Loader options that change the windows: recorded in a run's `config.toml` (`[data]`) so that
/// `codats eval` and `--resume` rebuild the same dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataOptions {
    /// WISDM: keep every user (turns off the reference's more-than-19200-records rule).
    #[serde(default, skip_serializing_if = "is_false")]
    pub wisdm_all_users: bool,
    /// UCI HAPT: add the postural transitions (activities 7–12).
    #[serde(default, skip_serializing_if = "is_false")]
    pub hapt_transitions: bool,
    /// Tabular: columns and windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tabular: Option<TabularOptions>,
    /// Synthetic: generator settings (default: `datasets/synthetic.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticConfig>,
}

impl DataOptions {
    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        *self == DataOptions::default()
    }
}
