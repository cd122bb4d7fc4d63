//! Dataset descriptions kept as data (`datasets/*.toml`, embedded at build time): URL, members, sizes, classes.

use serde::{Deserialize, Serialize};

use super::DataError;

/// The built-in UCI HAR description (`datasets/ucihar.toml`).
const UCIHAR_TOML: &str = include_str!("../../datasets/ucihar.toml");

/// One file inside a dataset archive, with its published byte size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// Path relative to the archive's root folder, `/`-separated.
    pub path: String,
    /// Published uncompressed size in bytes.
    pub size: u64,
}

/// One published split (UCI HAR: train, test): its label, subject and per-channel signal files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Split name (`train`, `test`).
    pub name: String,
    /// One class label per line.
    pub labels: MemberSpec,
    /// One subject (domain) id per line.
    pub subjects: MemberSpec,
    /// One file per channel, in channel order; one window per line.
    pub signals: Vec<MemberSpec>,
}

/// The inclusive range of valid domain ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdRange {
    /// Smallest valid id.
    pub first: u32,
    /// Largest valid id.
    pub last: u32,
}

/// Everything codats needs to fetch, verify and parse one published dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Registry name (`ucihar`), also the sub-folder under `$CODATS_DATA_DIR`.
    pub name: String,
    /// Human name used in messages (`UCI HAR`).
    pub title: String,
    /// Download URL of the archive.
    pub url: String,
    /// Environment variable that overrides `url` when set and non-empty.
    pub url_env: Option<String>,
    /// Archive file name (`UCI HAR Dataset.zip`).
    pub archive: String,
    /// Folder at the top of the archive, also the extracted folder's name.
    pub root: String,
    /// Samples per window.
    pub length: usize,
    /// Sampling rate in Hz.
    pub sample_rate_hz: f64,
    /// Whether windows are z-scored per domain per channel.
    pub zscore: bool,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// The label the files use for class 0.
    pub label_base: i64,
    /// Channel names in storage order.
    pub channels: Vec<String>,
    /// Valid domain (subject) ids.
    pub domain_ids: IdRange,
    /// Splits in load order.
    pub splits: Vec<SplitSpec>,
}

impl DatasetSpec {
    /// The built-in UCI HAR description.
    pub fn ucihar() -> Result<DatasetSpec, DataError> {
        DatasetSpec::from_toml("ucihar", UCIHAR_TOML)
    }

    /// Parses and checks a description (`name` is used in error messages).
    pub fn from_toml(name: &str, text: &str) -> Result<DatasetSpec, DataError> {
        let spec: DatasetSpec = toml::from_str(text).map_err(|e| DataError::Spec {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// The download URL: `$url_env` when set and non-empty, else `url`.
    pub fn effective_url(&self) -> String {
        self.url_env
            .as_deref()
            .and_then(std::env::var_os)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.url.clone())
    }

    /// Every member file, split by split (signals, then labels, then subjects).
    pub fn members(&self) -> impl Iterator<Item = &MemberSpec> {
        self.splits.iter().flat_map(|s| {
            s.signals
                .iter()
                .chain(std::iter::once(&s.labels))
                .chain(std::iter::once(&s.subjects))
        })
    }

    /// A member's full name inside the archive (`root/path`).
    pub fn member_name(&self, member: &MemberSpec) -> String {
        format!("{}/{}", self.root, member.path)
    }

    /// Checks the description is self-consistent.
    fn check(&self) -> Result<(), DataError> {
        let bad = |reason: String| {
            Err(DataError::Spec {
                name: self.name.clone(),
                reason,
            })
        };
        if self.length == 0 {
            return bad("length must be positive".into());
        }
        if self.classes.is_empty() {
            return bad("no classes".into());
        }
        if self.channels.is_empty() {
            return bad("no channels".into());
        }
        if self.domain_ids.first > self.domain_ids.last {
            return bad("domain_ids.first is after domain_ids.last".into());
        }
        if self.splits.is_empty() {
            return bad("no splits".into());
        }
        for split in &self.splits {
            if split.signals.len() != self.channels.len() {
                return bad(format!(
                    "split {} lists {} signal files for {} channels",
                    split.name,
                    split.signals.len(),
                    self.channels.len()
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for member in self.members() {
            if !seen.insert(member.path.as_str()) {
                return bad(format!("member {} is listed twice", member.path));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ucihar_spec_matches_the_published_archive() {
        let spec = DatasetSpec::ucihar().expect("built-in spec parses");
        assert_eq!(spec.name, "ucihar");
        assert_eq!(spec.archive, "UCI HAR Dataset.zip");
        assert_eq!(spec.root, "UCI HAR Dataset");
        assert_eq!(
            spec.url,
            "https://archive.ics.uci.edu/ml/machine-learning-databases/00240/UCI%20HAR%20Dataset.zip"
        );
        assert_eq!(spec.url_env.as_deref(), Some("CODATS_UCIHAR_URL"));
        assert_eq!(
            (spec.length, spec.sample_rate_hz, spec.zscore),
            (128, 50.0, false)
        );
        assert_eq!(
            spec.classes,
            [
                "WALKING",
                "WALKING_UPSTAIRS",
                "WALKING_DOWNSTAIRS",
                "SITTING",
                "STANDING",
                "LAYING"
            ]
        );
        assert_eq!(spec.channels.len(), 9);
        assert_eq!(spec.channels[0], "body_acc_x");
        assert_eq!(spec.channels[3], "body_gyro_x");
        assert_eq!(spec.channels[8], "total_acc_z");
        assert_eq!(spec.domain_ids, IdRange { first: 1, last: 30 });
        assert_eq!(spec.members().count(), 22);
        let total: u64 = spec.members().map(|m| m.size).sum();
        assert_eq!(
            total,
            9 * 15071600 + 9 * 6041350 + 14704 + 20152 + 5894 + 7934
        );
        // Signal files name their channel, in channel order.
        for split in &spec.splits {
            for (file, channel) in split.signals.iter().zip(&spec.channels) {
                assert!(
                    file.path
                        .ends_with(&format!("{}_{}.txt", channel, split.name)),
                    "{}",
                    file.path
                );
            }
        }
        assert_eq!(
            spec.member_name(&spec.splits[1].labels),
            "UCI HAR Dataset/test/y_test.txt"
        );
    }

    #[test]
    fn inconsistent_spec_is_rejected() {
        let text = UCIHAR_TOML.replace(
            "  { path = \"test/Inertial Signals/total_acc_z_test.txt\", size = 6041350 },\n",
            "",
        );
        let err = DatasetSpec::from_toml("x", &text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset spec ucihar: split test lists 8 signal files for 9 channels"
        );
    }
}
