//! The datasets `--dataset` accepts, and loading one by name from its data folder.

use std::path::{Path, PathBuf};

use super::{download, location, synthetic, ucihar, DataError, Dataset};

/// Dataset names accepted on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DatasetName {
    /// UCI HAR (Anguita et al. 2013): 30 subjects, 6 activities, 9 channels × 128 samples at 50 Hz.
    Ucihar,
    /// Built-in synthetic sum-of-sines activities, 10 domains (0..9) with shifted cadence,
    /// orientation and noise; generated from a seed, no download.
    Synthetic,
}

impl DatasetName {
    /// The name used on the command line and as the folder name under `$CODATS_DATA_DIR`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Ucihar => "ucihar",
            DatasetName::Synthetic => "synthetic",
        }
    }

    /// Parses a name, listing the valid ones on failure.
    pub fn parse(name: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(name, true).map_err(|_| {
            let valid: Vec<&str> = Self::all().iter().map(|d| d.as_str()).collect();
            format!(
                "unknown dataset {name:?}; valid datasets: {}",
                valid.join(", ")
            )
        })
    }

    /// Every dataset.
    pub fn all() -> &'static [DatasetName] {
        &[DatasetName::Ucihar, DatasetName::Synthetic]
    }
}

/// Where this dataset's files are looked for (`--data-dir`, else `$CODATS_DATA_DIR/<name>`, else the user cache).
pub fn dataset_dir(name: DatasetName, data_dir: Option<&Path>) -> PathBuf {
    location::dataset_dir(name.as_str(), data_dir)
}

/// Loads `name`, downloading it first when missing unless `offline`.
pub fn load(
    name: DatasetName,
    data_dir: Option<&Path>,
    offline: bool,
    progress: bool,
) -> Result<Dataset, DataError> {
    let dir = dataset_dir(name, data_dir);
    match name {
        DatasetName::Ucihar => {
            download::ensure_ucihar(&dir, offline, progress)?;
            ucihar::load(&dir)
        }
        DatasetName::Synthetic => Ok(synthetic::generate(&synthetic::SyntheticConfig::default())),
    }
}
