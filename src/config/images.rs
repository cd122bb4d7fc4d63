//! config.toml's `[images]` table: the pools, network and SGD recipe of an image run.

use serde::{Deserialize, Serialize};

pub use crate::data::images::folder::ColorMode;
pub use crate::nn::backbones::ImageBackbone;

/// The image settings of a run: config.toml's `[images]` table. USB's vocabulary where it has
/// one (`num_labels` = `labels_per_class` × classes, `uratio`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageOptions {
    /// Labelled images per class (balanced, seeded by the run seed).
    pub labels_per_class: usize,
    /// At most this many unlabelled images (all the rest when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlabelled_limit: Option<usize>,
    /// Fraction of each class held out as test when the dataset has no published split.
    pub test_fraction: f64,
    /// Training images held out (stratified) for the oracle `best_target` rule.
    pub valid_size: usize,
    /// Unlabelled images per labelled image in a batch (μ; FixMatch 7).
    pub uratio: usize,
    /// The network.
    pub backbone: ImageBackbone,
    /// A GCT gate in front of every convolution.
    pub gct: bool,
    /// SGD momentum (Nesterov when `nesterov`).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// FixMatch's cosine learning-rate decay, lr·cos(7πk / 16K); constant when false.
    pub cosine: bool,
    /// Batch-norm running-statistics momentum, PyTorch terms (USB's 0.001; runs from before
    /// the option have none and used 0.001).
    #[serde(default = "usb_bn_momentum")]
    pub bn_momentum: f64,
    /// `image_folder`: every image resized to `[width, height]` (bilinear); absent: the images
    /// must all have one size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<[u32; 2]>,
    /// `image_folder`: channels, `gray` (the default, left out of config.toml) or `rgb`.
    #[serde(default, skip_serializing_if = "ColorMode::is_gray")]
    pub color: ColorMode,
    /// Noisy Student: the finished run whose weights label the unlabelled pool (`--teacher`);
    /// absent (and left out of config.toml) without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherConfig>,
}

/// The teacher of a Noisy Student run: config.toml's `[images.teacher]` table. Its weights
/// are loaded once, when the run starts, and are saved in every checkpoint after that, so a
/// resumed run does not read them again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// The teacher's run directory, as given.
    pub run: std::path::PathBuf,
    /// The selection rule whose weights are used (`checkpoints/<weights>.safetensors`).
    pub weights: String,
    /// The variables of that file the teacher evaluated: `ema.` or `model.`.
    pub prefix: String,
    /// Its network.
    pub backbone: ImageBackbone,
    /// Whether its network has GCT gates.
    pub gct: bool,
    /// Hex sha256 of the weights file when the run was created.
    pub sha256: String,
}

impl TeacherConfig {
    /// The weights file.
    pub fn weights_path(&self) -> std::path::PathBuf {
        self.run
            .join("checkpoints")
            .join(format!("{}.safetensors", self.weights))
    }

    fn check(&self) -> Result<(), String> {
        if self.prefix != "ema." && self.prefix != "model." {
            return Err(format!(
                "[images.teacher] prefix {:?}: must be \"ema.\" or \"model.\"",
                self.prefix
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "[images.teacher] sha256 {:?}: not a hex sha256",
                self.sha256
            ));
        }
        Ok(())
    }
}

/// How `image_folder` reads its files: resized to `[width, height]` when given, else all of the
/// first file's size; `color` channels.
pub fn folder_options(
    resize: Option<[u32; 2]>,
    color: ColorMode,
) -> crate::data::images::folder::FolderOptions {
    use crate::data::images::folder::{FolderOptions, SizePolicy};
    FolderOptions {
        size: match resize {
            Some([width, height]) => SizePolicy::Resize { width, height },
            None => SizePolicy::SameAsFirst,
        },
        color,
    }
}

/// The largest side `--resize` accepts (a guard against a typo allocating gigabytes).
pub const MAX_RESIZE_SIDE: u32 = 1024;

fn usb_bn_momentum() -> f64 {
    crate::nn::layers::SSL_BN_MOMENTUM
}

impl ImageOptions {
    /// FixMatch's training recipe (Sohn et al. 2020; USB's defaults) with `labels_per_class`.
    pub fn fixmatch(labels_per_class: usize) -> Self {
        Self {
            labels_per_class,
            unlabelled_limit: None,
            test_fraction: 0.2,
            valid_size: 500,
            uratio: 7,
            backbone: ImageBackbone::SmallCnn,
            gct: false,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            cosine: true,
            bn_momentum: usb_bn_momentum(),
            resize: None,
            color: ColorMode::Gray,
            teacher: None,
        }
    }

    /// How `image_folder` reads its files under these options.
    pub fn folder_options(&self) -> crate::data::images::folder::FolderOptions {
        folder_options(self.resize, self.color)
    }

    /// Checks the values that do not need the data; a bad one is a one-line error naming it.
    pub fn check(&self) -> Result<(), String> {
        if self.unlabelled_limit == Some(0) {
            return Err("--unlabelled-limit must be at least 1 (leave it out for all)".into());
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(format!(
                "--test-fraction {}: must lie strictly between 0 and 1",
                self.test_fraction
            ));
        }
        if self.uratio == 0 {
            return Err("--uratio must be at least 1".into());
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(format!("--momentum {}: must lie in [0, 1)", self.momentum));
        }
        if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
            return Err(format!(
                "--bn-momentum {}: must lie in (0, 1]",
                self.bn_momentum
            ));
        }
        if let Some([w, h]) = self.resize {
            if w == 0 || h == 0 || w > MAX_RESIZE_SIDE || h > MAX_RESIZE_SIDE {
                return Err(format!(
                    "--resize {w}x{h}: each side must lie in 1..={MAX_RESIZE_SIDE}"
                ));
            }
        }
        if let Some(t) = &self.teacher {
            t.check()?;
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "--weight-decay {}: must be a number ≥ 0",
                self.weight_decay
            ));
        }
        Ok(())
    }
}
