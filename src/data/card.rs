//! Dataset cards: every dataset described as data (`datasets/<name>.toml`, embedded at build time) —
//! where to download it, what the archive holds, classes, channels, window rules and loader settings.
//!
//! UCI HAR keeps its detailed member list in `datasets/ucihar.toml` ([`super::spec::DatasetSpec`]);
//! [`Card::builtin`] derives its card from that file.

use serde::{Deserialize, Serialize};

use super::generate::SyntheticConfig;
use super::spec::DatasetSpec;
use super::window::WindowSpec;
use super::DataError;

/// The embedded cards, by name.
const CARDS: &[(&str, &str)] = &[
    ("ucihhar", include_str!("../../datasets/ucihhar.toml")),
    ("wisdm_ar", include_str!("../../datasets/wisdm_ar.toml")),
    ("wisdm_at", include_str!("../../datasets/wisdm_at.toml")),
    ("uwave", include_str!("../../datasets/uwave.toml")),
    ("ucihapt", include_str!("../../datasets/ucihapt.toml")),
    ("tabular", include_str!("../../datasets/tabular.toml")),
    ("synthetic", include_str!("../../datasets/synthetic.toml")),
];

/// Which parser reads the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoaderKind {
    /// UCI HAR Inertial Signals ([`super::formats::ucihar`]).
    Ucihar,
    /// UCI HHAR CSV ([`super::formats::hhar`]).
    Hhar,
    /// WISDM raw records ([`super::formats::wisdm`]).
    Wisdm,
    /// uWave gesture files ([`super::formats::uwave`]).
    Uwave,
    /// UCI HAPT raw signals ([`super::formats::hapt`]).
    Hapt,
    /// The user's CSV/Parquet ([`super::formats::tabular`]).
    Tabular,
    /// Generated ([`super::generate`]).
    Synthetic,
}

/// Archive formats codats can verify and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchiveKind {
    /// A zip archive.
    #[serde(rename = "zip")]
    Zip,
    /// A gzip-compressed tar archive.
    #[serde(rename = "tar.gz")]
    TarGz,
}

/// Where a dataset is published and what its archive must contain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCard {
    /// Download URL.
    pub url: String,
    /// Environment variable that overrides `url` when set and non-empty (mirrors, tests).
    pub url_env: Option<String>,
    /// Archive file name.
    pub archive: String,
    /// Archive format.
    pub kind: ArchiveKind,
    /// sha256 of the archive (lower-case hex), where known.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Members the archive must hold (paths inside the archive).
    #[serde(default)]
    pub members: Vec<String>,
}

impl SourceCard {
    /// The download URL: `$url_env` when set and non-empty, else `url`.
    pub fn effective_url(&self) -> String {
        self.url_env
            .as_deref()
            .and_then(std::env::var_os)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.url.clone())
    }
}

/// UCI HHAR settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HharCard {
    /// The CSV inside the archive.
    pub member: String,
    /// The expected header line's fields.
    pub header: Vec<String>,
    /// User names in domain order (domain id = index).
    pub users: Vec<String>,
    /// The `gt` value of unlabelled rows (dropped, counted).
    pub null_label: String,
}

/// WISDM settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WisdmCard {
    /// The raw records file inside the archive.
    pub member: String,
    /// Keep a user when its record count minus one exceeds this (the reference's rule).
    pub user_threshold: u64,
}

/// uWave settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UwaveCard {
    /// Every gesture is zero-padded to this many samples.
    pub pad_to: usize,
    /// Gesture files' names contain this.
    pub file_contains: String,
}

/// UCI HAPT settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaptCard {
    /// Folder of the raw signal files.
    pub raw_dir: String,
    /// Segment file inside `raw_dir`.
    pub labels: String,
    /// The index `labels.txt` gives the first sample of a file.
    pub label_index_base: u64,
    /// Activities `1..=default_classes` are used unless transitions are asked for.
    pub default_classes: usize,
}

/// One dataset's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// Registry name (`--dataset`).
    pub name: String,
    /// Human name.
    pub title: String,
    /// One line for `codats datasets list`.
    pub summary: String,
    /// Which parser reads it.
    pub loader: LoaderKind,
    /// Sampling rate in Hz, when one rate applies.
    #[serde(default)]
    pub sample_rate_hz: Option<f64>,
    /// The sampling rate in words, when it varies.
    #[serde(default)]
    pub sample_rate_note: Option<String>,
    /// Whether windows are z-scored per domain per channel on the domain's train split.
    pub zscore: bool,
    /// Class names in label order (empty when they come from the data or options).
    pub classes: Vec<String>,
    /// Channel names in window order (empty when they come from options).
    pub channels: Vec<String>,
    /// What the domains are, in words.
    pub domains: String,
    /// Where the data is published (absent for generated and user data).
    #[serde(default)]
    pub source: Option<SourceCard>,
    /// Windowing rule (absent when the files are already windows or examples).
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// HHAR settings.
    #[serde(default)]
    pub hhar: Option<HharCard>,
    /// WISDM settings.
    #[serde(default)]
    pub wisdm: Option<WisdmCard>,
    /// uWave settings.
    #[serde(default)]
    pub uwave: Option<UwaveCard>,
    /// UCI HAPT settings.
    #[serde(default)]
    pub hapt: Option<HaptCard>,
    /// Default synthetic settings.
    #[serde(default)]
    pub synthetic: Option<SyntheticConfig>,
}

impl Card {
    /// The embedded card of dataset `name` (`ucihar` is derived from its [`DatasetSpec`]).
    pub fn builtin(name: &str) -> Result<Card, DataError> {
        if name == "ucihar" {
            return Ok(Card::from_ucihar(&DatasetSpec::ucihar()?));
        }
        let text = CARDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| DataError::Spec {
                name: name.to_string(),
                reason: "no such dataset card".into(),
            })?;
        Card::from_toml(name, text)
    }

    /// Parses and checks a card (`name` is used in messages).
    pub fn from_toml(name: &str, text: &str) -> Result<Card, DataError> {
        let card: Card = toml::from_str(text).map_err(|e| DataError::Spec {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        card.check()?;
        Ok(card)
    }

    /// The text of an embedded card (part of the cache key: editing a card rebuilds its cache).
    pub fn builtin_text(name: &str) -> &'static str {
        if name == "ucihar" {
            return include_str!("../../datasets/ucihar.toml");
        }
        CARDS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, t)| *t)
    }

    /// The UCI HAR card, from its detailed spec.
    fn from_ucihar(spec: &DatasetSpec) -> Card {
        Card {
            name: spec.name.clone(),
            title: spec.title.clone(),
            summary: "UCI HAR (Anguita et al. 2013): 30 subjects (domains 1..30), 6 activities, 9 channels x 128 samples at 50 Hz, as published".into(),
            loader: LoaderKind::Ucihar,
            sample_rate_hz: Some(spec.sample_rate_hz),
            sample_rate_note: None,
            zscore: spec.zscore,
            classes: spec.classes.clone(),
            channels: spec.channels.clone(),
            domains: "subjects 1..30".into(),
            source: Some(SourceCard {
                url: spec.url.clone(),
                url_env: spec.url_env.clone(),
                archive: spec.archive.clone(),
                kind: ArchiveKind::Zip,
                sha256: None,
                members: spec.members().map(|m| spec.member_name(m)).collect(),
            }),
            window: None,
            hhar: None,
            wisdm: None,
            uwave: None,
            hapt: None,
            synthetic: None,
        }
    }

    /// The sampling rate in words.
    pub fn sample_rate_text(&self) -> String {
        match (self.sample_rate_hz, &self.sample_rate_note) {
            (Some(hz), _) => format!("{hz} Hz"),
            (None, Some(note)) => note.clone(),
            (None, None) => "unknown".into(),
        }
    }

    /// Checks that the loader's settings are present and consistent.
    fn check(&self) -> Result<(), DataError> {
        let bad = |reason: &str| {
            Err(DataError::Spec {
                name: self.name.clone(),
                reason: reason.to_string(),
            })
        };
        if let Some(w) = &self.window {
            if w.length == 0 || w.stride == 0 {
                return bad("window length and stride must be positive");
            }
        }
        if let Some(sha) = self.source.as_ref().and_then(|s| s.sha256.as_ref()) {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad("source.sha256 must be 64 hex digits");
            }
        }
        let fixed = || -> Result<(), DataError> {
            if self.classes.is_empty() || self.channels.is_empty() {
                return bad("classes and channels must be listed");
            }
            Ok(())
        };
        match self.loader {
            LoaderKind::Ucihar => fixed(),
            LoaderKind::Hhar => {
                fixed()?;
                let Some(h) = &self.hhar else {
                    return bad("loader hhar needs an [hhar] table");
                };
                if self.window.is_none() || self.source.is_none() {
                    return bad("loader hhar needs [window] and [source]");
                }
                if self.channels.len() != 3 || h.header.len() != 10 || h.users.is_empty() {
                    return bad("hhar: 3 channels, a 10-field header and at least one user");
                }
                Ok(())
            }
            LoaderKind::Wisdm => {
                fixed()?;
                if self.wisdm.is_none() || self.window.is_none() || self.source.is_none() {
                    return bad("loader wisdm needs [wisdm], [window] and [source]");
                }
                if self.channels.len() != 3 {
                    return bad("wisdm records hold 3 channels");
                }
                Ok(())
            }
            LoaderKind::Uwave => {
                fixed()?;
                match &self.uwave {
                    Some(u) if u.pad_to > 0 && self.channels.len() == 3 => Ok(()),
                    _ => bad("loader uwave needs [uwave] with pad_to > 0, and 3 channels"),
                }
            }
            LoaderKind::Hapt => {
                fixed()?;
                match (&self.hapt, &self.window) {
                    (Some(h), Some(_))
                        if h.default_classes >= 1
                            && h.default_classes <= self.classes.len()
                            && self.channels.len() == 6 =>
                    {
                        Ok(())
                    }
                    _ => bad("loader hapt needs [hapt] (1 <= default_classes <= classes), [window] and 6 channels"),
                }
            }
            LoaderKind::Tabular => match &self.window {
                Some(_) => Ok(()),
                None => bad("loader tabular needs default [window] settings"),
            },
            LoaderKind::Synthetic => match &self.synthetic {
                Some(_) => Ok(()),
                None => bad("loader synthetic needs a [synthetic] table"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_card_parses() {
        for name in [
            "ucihar",
            "ucihhar",
            "wisdm_ar",
            "wisdm_at",
            "uwave",
            "ucihapt",
            "tabular",
            "synthetic",
        ] {
            let card = Card::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(card.name, name);
            assert!(!Card::builtin_text(name).is_empty());
        }
        assert!(Card::builtin("nope").is_err());
    }

    #[test]
    fn reference_preprocessing_is_recorded_in_the_cards() {
        let hhar = Card::builtin("ucihhar").unwrap();
        let w = hhar.window.unwrap();
        assert_eq!((w.length, w.stride, w.reference_bounds), (128, 128, true));
        assert_eq!(hhar.hhar.unwrap().users.len(), 9);
        let ar = Card::builtin("wisdm_ar").unwrap();
        assert_eq!(ar.wisdm.as_ref().unwrap().user_threshold, 19200);
        assert_eq!(
            ar.classes,
            [
                "Walking",
                "Jogging",
                "Sitting",
                "Standing",
                "Upstairs",
                "Downstairs"
            ]
        );
        let at = Card::builtin("wisdm_at").unwrap();
        assert_eq!(
            at.classes,
            [
                "Walking",
                "Jogging",
                "Stairs",
                "Sitting",
                "Standing",
                "LyingDown"
            ]
        );
        assert_eq!(Card::builtin("uwave").unwrap().uwave.unwrap().pad_to, 315);
        let hapt = Card::builtin("ucihapt").unwrap();
        assert_eq!(hapt.classes.len(), 12);
        assert_eq!(hapt.window.unwrap().stride, 64);
        assert!(!Card::builtin("ucihar").unwrap().zscore);
    }

    #[test]
    fn synthetic_card_defaults_match_the_code() {
        let card = Card::builtin("synthetic").unwrap();
        assert_eq!(card.synthetic.unwrap(), SyntheticConfig::default());
    }

    #[test]
    fn bad_cards_are_rejected() {
        let text = Card::builtin_text("ucihhar").replace("[hhar]", "[hhar_]");
        assert!(Card::from_toml("x", &text).is_err());
        let text = Card::builtin_text("wisdm_ar")
            .replace("kind = \"tar.gz\"", "kind = \"tar.gz\"\nsha256 = \"abc\"");
        let e = Card::from_toml("x", &text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dataset spec wisdm_ar: source.sha256 must be 64 hex digits"
        );
    }
}
