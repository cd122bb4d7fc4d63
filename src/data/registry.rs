//! The datasets `--dataset` accepts, and loading one by name: the name gives its card and its
//! [`Format`] ([`DatasetName::format`]); the registry finds (or downloads) the files, reads the window
//! cache or has the format parse them and caches the result, and says what was skipped.

use std::path::{Path, PathBuf};

use super::card::Card;
use super::formats::{hapt, hhar, synthetic, tabular, ucihar, uwave, wisdm, Format};
use super::report::LoadReport;
use super::{cache, location};
use super::{DataError, Dataset};

pub use super::formats::DataOptions;

/// Dataset names accepted on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum DatasetName {
    /// UCI HAR (Anguita et al. 2013): 30 subjects, 6 activities, 9 channels × 128 samples at 50 Hz.
    #[value(name = "ucihar")]
    #[serde(rename = "ucihar")]
    Ucihar,
    /// UCI HHAR phones accelerometer: 9 users, 6 activities, 3 channels.
    #[value(name = "ucihhar")]
    #[serde(rename = "ucihhar")]
    Ucihhar,
    /// WISDM activity prediction v1.1: 6 activities, 3 channels.
    #[value(name = "wisdm_ar")]
    #[serde(rename = "wisdm_ar")]
    WisdmAr,
    /// WISDM Actitracker v2.0: 6 activities, 3 channels.
    #[value(name = "wisdm_at")]
    #[serde(rename = "wisdm_at")]
    WisdmAt,
    /// uWave gestures: 8 users, 8 gestures, 3 channels, padded to 315.
    #[value(name = "uwave")]
    #[serde(rename = "uwave")]
    Uwave,
    /// UCI HAPT raw signals: 30 users, 6 (or 12) activities, 6 channels.
    #[value(name = "ucihapt")]
    #[serde(rename = "ucihapt")]
    Ucihapt,
    /// Your own long-format CSV / Parquet (`--domain-col`, `--label-col`, `--channels`).
    #[value(name = "tabular")]
    #[serde(rename = "tabular")]
    Tabular,
    /// Built-in synthetic sum-of-sines activities, 10 domains (0..9) by default, with shifted
    /// cadence, orientation and noise; generated from a seed, no download.
    #[value(name = "synthetic")]
    #[serde(rename = "synthetic")]
    Synthetic,
}

impl DatasetName {
    /// The name used on the command line and as the folder name under `$CODATS_DATA_DIR`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Ucihar => "ucihar",
            DatasetName::Ucihhar => "ucihhar",
            DatasetName::WisdmAr => "wisdm_ar",
            DatasetName::WisdmAt => "wisdm_at",
            DatasetName::Uwave => "uwave",
            DatasetName::Ucihapt => "ucihapt",
            DatasetName::Tabular => "tabular",
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
        &[
            DatasetName::Ucihar,
            DatasetName::Ucihhar,
            DatasetName::WisdmAr,
            DatasetName::WisdmAt,
            DatasetName::Uwave,
            DatasetName::Ucihapt,
            DatasetName::Tabular,
            DatasetName::Synthetic,
        ]
    }

    /// This dataset's card.
    pub fn card(self) -> Result<Card, DataError> {
        Card::builtin(self.as_str())
    }

    /// The format this dataset is published in (its parser).
    pub fn format(self) -> &'static dyn Format {
        match self {
            DatasetName::Ucihar => &ucihar::UciHar,
            DatasetName::Ucihhar => &hhar::Hhar,
            DatasetName::WisdmAr | DatasetName::WisdmAt => &wisdm::Wisdm,
            DatasetName::Uwave => &uwave::Uwave,
            DatasetName::Ucihapt => &hapt::Hapt,
            DatasetName::Tabular => &tabular::Tabular,
            DatasetName::Synthetic => &synthetic::Synthetic,
        }
    }
}

/// How to load: where the files are, whether to download, where the cache is.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// Never download.
    pub offline: bool,
    /// Show download progress.
    pub progress: bool,
    /// Cache folder; `None` turns the cache off.
    pub cache: Option<PathBuf>,
    /// Loader options.
    pub data: DataOptions,
}

impl LoadOptions {
    /// Options with the default cache folder.
    pub fn new(data_dir: Option<&Path>, offline: bool, progress: bool, data: DataOptions) -> Self {
        LoadOptions {
            data_dir: data_dir.map(Path::to_path_buf),
            offline,
            progress,
            cache: Some(cache::default_dir()),
            data,
        }
    }
}

/// Where a load's windows came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Read from this cache entry.
    Hit(PathBuf),
    /// Parsed, and written to this cache entry.
    Written(PathBuf),
    /// Parsed; the cache could not be written (the reason).
    WriteFailed(String),
    /// Parsed; the cache entry was unreadable (the reason) and was rebuilt at this path.
    Rebuilt(PathBuf, String),
    /// Parsed; the cache is off.
    Off,
    /// Generated (synthetic data is never cached).
    Generated,
}

impl std::fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheStatus::Hit(p) => write!(f, "read from cache {}", p.display()),
            CacheStatus::Written(p) => write!(f, "parsed and cached at {}", p.display()),
            CacheStatus::WriteFailed(r) => write!(f, "parsed; could not write the cache: {r}"),
            CacheStatus::Rebuilt(p, r) => {
                write!(
                    f,
                    "parsed (the cache entry was unreadable: {r}); cached at {}",
                    p.display()
                )
            }
            CacheStatus::Off => write!(f, "parsed (cache off)"),
            CacheStatus::Generated => write!(f, "generated"),
        }
    }
}

/// A loaded dataset with its description and the account of the load.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The windows.
    pub dataset: Dataset,
    /// What the loader read and skipped.
    pub report: LoadReport,
    /// The dataset's card.
    pub card: Card,
    /// Channel names, in window order.
    pub channel_names: Vec<String>,
    /// Sampling rate in words.
    pub sample_rate: String,
    /// The folder (or file) the data came from.
    pub source: PathBuf,
    /// Cache hit or miss.
    pub cache: CacheStatus,
}

/// Where this dataset's files are looked for (`--data-dir`, else `$CODATS_DATA_DIR/<name>`, else the user cache).
pub fn dataset_dir(name: DatasetName, data_dir: Option<&Path>) -> PathBuf {
    location::dataset_dir(name.as_str(), data_dir)
}

/// Loads `name` with default options, downloading it first when missing unless `offline`.
pub fn load(
    name: DatasetName,
    data_dir: Option<&Path>,
    offline: bool,
    progress: bool,
) -> Result<Dataset, DataError> {
    open(
        name,
        &LoadOptions::new(data_dir, offline, progress, DataOptions::default()),
    )
    .map(|l| l.dataset)
}

/// Checks that `opts` fits `name` (tabular needs its columns; other datasets take no tabular options).
pub fn check_options(name: DatasetName, opts: &DataOptions) -> Result<(), DataError> {
    let misplaced = |what: &str, owner: &str| {
        Err(DataError::Options(format!(
            "{what} applies to --dataset {owner}, not {}",
            name.as_str()
        )))
    };
    if opts.tabular.is_some() && name != DatasetName::Tabular {
        return misplaced(
            "tabular options (--domain-col, --window-length, ...)",
            "tabular",
        );
    }
    if opts.synthetic.is_some() && name != DatasetName::Synthetic {
        return misplaced("--synthetic-* options", "synthetic");
    }
    if opts.wisdm_all_users && !matches!(name, DatasetName::WisdmAr | DatasetName::WisdmAt) {
        return misplaced("--wisdm-all-users", "wisdm_ar or wisdm_at");
    }
    if opts.hapt_transitions && name != DatasetName::Ucihapt {
        return misplaced("--hapt-transitions", "ucihapt");
    }
    name.format().check(opts)
}

/// The input files of `name` found in `dir` (without parsing them); an error says what is missing.
pub fn find_inputs(name: DatasetName, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    name.format().inputs(&name.card()?, dir)
}

/// Downloads dataset `name`'s published archive into `dir` (verified against its card, atomically),
/// unless it is already there; returns the archive's path.
pub fn ensure(
    name: DatasetName,
    card: &Card,
    dir: &Path,
    progress: bool,
) -> Result<PathBuf, DataError> {
    name.format().download(card, dir, progress)
}

/// The options that change `name`'s windows, as text for the cache key: the card, then the
/// format's options.
fn params(name: DatasetName, opts: &DataOptions) -> String {
    format!(
        "{}\n{}",
        Card::builtin_text(name.as_str()),
        name.format().params(opts)
    )
}

/// True for errors that mean "the files are not there" (so a download may help).
fn is_missing(e: &DataError) -> bool {
    matches!(
        e,
        DataError::NotFound { .. } | DataError::ArchiveNotFound { .. }
    )
}

/// Loads `name` as `opts` say: finds the files (downloading them when missing, unless offline), then
/// reads the cache entry for these inputs and options, or parses and writes one.
pub fn open(name: DatasetName, opts: &LoadOptions) -> Result<Loaded, DataError> {
    check_options(name, &opts.data)?;
    let card = name.card()?;
    let format = name.format();
    if let Some(generated) = format.generate(&card, &opts.data) {
        let (ds, report) = generated?;
        return Ok(Loaded {
            channel_names: (0..ds.channels).map(|c| format!("ch{c}")).collect(),
            sample_rate: card.sample_rate_text(),
            dataset: ds,
            report,
            card,
            source: PathBuf::from("(generated)"),
            cache: CacheStatus::Generated,
        });
    }
    let dir = dataset_dir(name, opts.data_dir.as_deref());
    let files = match format.inputs(&card, &dir) {
        Ok(f) => f,
        Err(e) if is_missing(&e) && !opts.offline && card.source.is_some() => {
            format.download(&card, &dir, opts.progress)?;
            format.inputs(&card, &dir)?
        }
        Err(e) => return Err(e),
    };
    let (channel_names, sample_rate) = format.describe(&card, &opts.data);
    let source = dir.clone();
    let build =
        |status: &dyn Fn(&Dataset, &LoadReport) -> CacheStatus| -> Result<Loaded, DataError> {
            let (ds, report) = format.parse(&card, &dir, &opts.data)?;
            let cache = status(&ds, &report);
            Ok(Loaded {
                dataset: ds,
                report,
                card: card.clone(),
                channel_names: channel_names.clone(),
                sample_rate: sample_rate.clone(),
                source: source.clone(),
                cache,
            })
        };
    let Some(cache_dir) = &opts.cache else {
        return build(&|_, _| CacheStatus::Off);
    };
    let key = cache::key(name.as_str(), &params(name, &opts.data), &files)?;
    let mut unreadable = None;
    match cache::read(cache_dir, name.as_str(), &key) {
        Ok(Some((ds, meta))) => {
            return Ok(Loaded {
                dataset: ds,
                report: meta.report,
                card: card.clone(),
                channel_names,
                sample_rate,
                source,
                cache: CacheStatus::Hit(cache::entry_path(cache_dir, name.as_str(), &key)),
            })
        }
        Ok(None) => {}
        Err(e) => unreadable = Some(e.to_string()),
    }
    let src = dir.display().to_string();
    build(
        &|ds, report| match cache::write(cache_dir, &key, ds, report, &src) {
            Ok(path) => match &unreadable {
                Some(r) => CacheStatus::Rebuilt(path, r.clone()),
                None => CacheStatus::Written(path),
            },
            Err(e) => CacheStatus::WriteFailed(e.to_string()),
        },
    )
}

/// Loads a dataset for a run (train, resume, eval), printing where it came from and what was skipped
/// to stderr unless `quiet`.
pub fn load_for_run(
    name: DatasetName,
    data_dir: Option<&Path>,
    offline: bool,
    quiet: bool,
    data: &DataOptions,
    no_cache: bool,
) -> Result<Dataset, DataError> {
    let mut opts = LoadOptions::new(data_dir, offline, !quiet, data.clone());
    if no_cache {
        opts.cache = None;
    }
    let loaded = open(name, &opts)?;
    if !quiet {
        eprintln!(
            "{}: {} domains, {} windows ({})",
            name.as_str(),
            loaded.dataset.domains.len(),
            loaded.dataset.n_windows(),
            loaded.cache
        );
        for s in &loaded.report.skipped {
            eprintln!(
                "  skipped {} rows: {} (first at {})",
                s.count, s.reason, s.first
            );
        }
    }
    Ok(loaded.dataset)
}
