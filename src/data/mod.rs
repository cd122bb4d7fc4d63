//! Datasets: per-participant windows, loaders for each published format, splits and batching.
//!
//! [`registry`] turns a `--dataset` name into its card and its [`formats::Format`], finds (or
//! downloads) the files and reads the window [`cache`] or has the format parse them; [`formats`]
//! holds one file per published format; the rest is shared: [`card`] and [`spec`] (datasets as
//! data), [`location`], [`download`], [`source`] (opening input files and archives), [`window`],
//! [`split`] and [`batch`].
//!
//! A [`Dataset`] is a set of domains (participants); each domain holds windows `[n, channels, length]`
//! (row-major f32) and class labels `0..n_classes`.

pub mod augment;
pub mod batch;
pub mod cache;
pub mod card;
pub mod describe;
pub mod download;
pub mod error;
pub mod formats;
pub mod generate;
pub mod images;
pub mod location;
pub(crate) mod parse;
pub mod plot;
pub mod registry;
pub mod report;
pub mod source;
pub mod spec;
pub mod split;
pub mod window;

pub use error::DataError;
// The formats that code outside `data` (config, training, sweeps, the CLI, bench) names by their
// paths from before `formats/` existed; new code can name `data::formats::*`.
pub use formats::{hhar, synthetic, tabular, ucihar, uwave};

/// One domain (a participant): its windows and labels, in file order.
#[derive(Debug, Clone)]
pub struct DomainData {
    /// The id users pass on the command line (UCI HAR: subject 1..30).
    pub id: u32,
    /// Windows, row-major `[n, channels, length]`.
    pub x: Vec<f32>,
    /// Class per window, `0..n_classes`.
    pub y: Vec<u32>,
    /// Valid samples per window when windows are zero-padded at the end (uWave gestures); `None` when
    /// every window is full. Z-scoring fits and applies to the valid samples only, so padding stays 0.
    pub valid_lengths: Option<Vec<u32>>,
}

impl DomainData {
    /// Number of windows in this domain.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True when the domain holds no windows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// A loaded dataset: every domain, with the shape and class names shared by all of them.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Registry name (`ucihar`, ...).
    pub name: String,
    /// Channels per window.
    pub channels: usize,
    /// Samples per window.
    pub length: usize,
    /// Class names, index = class id.
    pub class_names: Vec<String>,
    /// Whether windows are z-scored per domain per channel on that domain's train split
    /// (false for UCI HAR, used as published).
    pub zscore: bool,
    /// Domains sorted by id.
    pub domains: Vec<DomainData>,
}

impl Dataset {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }
    /// Domain ids in order.
    pub fn domain_ids(&self) -> Vec<u32> {
        self.domains.iter().map(|d| d.id).collect()
    }
    /// The domain with this user-facing id.
    pub fn domain(&self, id: u32) -> Option<&DomainData> {
        self.domains.iter().find(|d| d.id == id)
    }
    /// Total number of windows.
    pub fn n_windows(&self) -> usize {
        self.domains.iter().map(|d| d.len()).sum()
    }
}
