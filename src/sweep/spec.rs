//! Sweep specs (`experiments/*.toml`): what to run, parsed strictly and checked before any job
//! starts. Every error names the file, the key and the line.
//!
//! ```toml
//! name = "smoke"
//! methods = ["none", "codats"]
//! repeats = 2                      # seeds 0, 1 (or: seeds = [3, 7])
//! selection = ["best_target"]      # rules the report's tables use
//!
//! [train]                          # hyper-parameters of every job
//! steps = 20
//! batch_size = 32
//!
//! [[overrides]]                    # later entries win; match on dataset and/or method
//! method = "target_only"
//! steps = 10
//!
//! [grid]                           # optional: one job per value (ws_noise: codats_ws jobs only)
//! ws_noise = [0.0, 0.1]
//!
//! [[problems]]                     # explicit single-source pairs [source, target]
//! dataset = "synthetic"
//! pairs = [[0, 1], [2, 3]]
//!
//! [[problems]]                     # one explicit multi-source problem
//! dataset = "synthetic"
//! sources = [0, 1, 2]
//! target = 5
//!
//! [[problems]]                     # generated: per target, per n, `subsets` random n-subsets
//! dataset = "synthetic"
//! targets = [4, 5]
//! n_sources = [1, 3]
//! subsets = 2
//! seed = 0
//! ```
//!
//! Image problems (`codats ssl train` jobs) name an image dataset and nothing else; their
//! labelled pool is `labels_per_class`, set in `[train]`/`[[overrides]]` or swept in `[grid]`
//! (it only multiplies image jobs, as `ws_noise` only multiplies codats_ws jobs). An entry may
//! list its own `methods` (replacing the top-level list), which lets one spec hold both kinds:
//!
//! ```toml
//! methods = ["supervised", "fixmatch"]
//! selection = ["last", "best_target"]
//!
//! [train]
//! steps = 300
//! batch_size = 16
//! uratio = 2                       # image keys: labels_per_class, uratio, unlabelled_limit,
//!                                  # backbone (small-cnn, wrn-28-2), gct, momentum,
//!                                  # bn_momentum, nesterov,
//!                                  # weight_decay, cosine, test_fraction, valid_size,
//!                                  # resize, color (image jobs only)
//! [grid]
//! labels_per_class = [5, 10, 20]
//!
//! [[problems]]
//! dataset = "digits"
//!
//! [[problems]]                     # a time-series problem in the same sweep
//! dataset = "synthetic"
//! pairs = [[0, 1]]
//! methods = ["none", "codats"]
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::images::{ColorMode, ImageBackbone};
use crate::data::batch::BatchDivision;
use crate::methods::MethodKind;
use crate::nn::Kernels;

/// A spec error located in its file: `FILE:LINE:COL: key `K`: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: key `{key}`: {message}")]
pub struct SpecError {
    /// The spec file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted key path (`problems[1].pairs[0]`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Settings for `codats sweep slurm` (flags override them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` per array task, e.g. `04:00:00`.
    pub time: Option<String>,
    /// `--cpus-per-task` (also the job's `--threads`).
    pub cpus_per_task: Option<usize>,
    /// `--mem`, e.g. `8G`.
    pub mem: Option<String>,
    /// Array throttle: at most this many tasks at once (`--array=...%N`).
    pub max_parallel: Option<usize>,
    /// Further `#SBATCH` options, verbatim (e.g. `"--account=lab"`).
    #[serde(default)]
    pub extra: Vec<String>,
}

/// Hyper-parameters of a job; every field optional so that `[train]` and `[[overrides]]` layer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHyper {
    /// Only in `[[overrides]]`: apply to this dataset.
    pub dataset: Option<Spanned<String>>,
    /// Only in `[[overrides]]`: apply to this method.
    pub method: Option<Spanned<String>>,
    /// Training steps.
    pub steps: Option<Spanned<usize>>,
    /// Total batch size.
    pub batch_size: Option<Spanned<usize>>,
    /// Batch division (default: the method's).
    pub batch_division: Option<Spanned<BatchDivision>>,
    /// Learning rate.
    pub lr: Option<Spanned<f64>>,
    /// Seed of the splits.
    pub split_seed: Option<Spanned<u64>>,
    /// Evaluate every N steps.
    pub eval_every: Option<Spanned<usize>>,
    /// Checkpoint every N steps.
    pub checkpoint_every: Option<Spanned<usize>>,
    /// `--few-shot K`: the few-shot selection rule on K labelled target windows per class
    /// (time-series jobs).
    pub few_shot: Option<Spanned<usize>>,
    /// DA-WS proportion noise (codats_ws, and jobs with `ws`).
    pub ws_noise: Option<Spanned<f64>>,
    /// `--ws`: the DA-WS loss on top of an adaptation method (those on the unlabelled target
    /// without one of their own; other methods' jobs are left as they are).
    pub ws: Option<Spanned<bool>>,
    /// Data folder of the dataset.
    pub data_dir: Option<Spanned<PathBuf>>,
    /// Convolution implementation (`fast` or `candle`; default: the command's).
    pub kernels: Option<Spanned<Kernels>>,
    /// Image jobs: labelled images per class.
    pub labels_per_class: Option<Spanned<usize>>,
    /// Image jobs: unlabelled images per labelled one in a step (μ).
    pub uratio: Option<Spanned<usize>>,
    /// Image jobs: at most this many unlabelled images.
    pub unlabelled_limit: Option<Spanned<usize>>,
    /// The network: an image one (`small-cnn`, `wrn-28-2`) sets image jobs', a time-series one
    /// (`fcn`, `adatime-cnn`, `gru`) the time-series jobs'.
    pub backbone: Option<Spanned<SpecBackbone>>,
    /// Image jobs: GCT gates.
    pub gct: Option<Spanned<bool>>,
    /// Image jobs: SGD momentum.
    pub momentum: Option<Spanned<f64>>,
    /// Image jobs: batch-norm running-statistics momentum.
    pub bn_momentum: Option<Spanned<f64>>,
    /// Image jobs (image_folder): resize every image to `[width, height]`.
    pub resize: Option<Spanned<[u32; 2]>>,
    /// Image jobs (image_folder): `gray` or `rgb`.
    pub color: Option<Spanned<ColorMode>>,
    /// Image jobs: Nesterov momentum.
    pub nesterov: Option<Spanned<bool>>,
    /// Image jobs: L2 weight decay.
    pub weight_decay: Option<Spanned<f64>>,
    /// Image jobs: cosine learning-rate decay.
    pub cosine: Option<Spanned<bool>>,
    /// Image jobs: test fraction when the dataset has no published split.
    pub test_fraction: Option<Spanned<f64>>,
    /// Image jobs: training images held out for the `best_target` rule.
    pub valid_size: Option<Spanned<usize>>,
}

/// One `[[problems]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProblems {
    /// Dataset name.
    pub dataset: Spanned<String>,
    /// Single-source pairs `[source, target]`.
    pub pairs: Option<Spanned<Vec<Spanned<Vec<u32>>>>>,
    /// Explicit sources of one problem.
    pub sources: Option<Spanned<Vec<u32>>>,
    /// Target of one explicit problem.
    pub target: Option<Spanned<u32>>,
    /// Generated: targets.
    pub targets: Option<Spanned<Vec<Spanned<u32>>>>,
    /// Generated: numbers of sources.
    pub n_sources: Option<Spanned<Vec<Spanned<usize>>>>,
    /// Generated: random subsets per (target, n).
    pub subsets: Option<Spanned<usize>>,
    /// Generated: seed of the subset draw.
    pub seed: Option<u64>,
    /// Generated: candidate sources (default: every other domain of the dataset).
    pub pool: Option<Spanned<Vec<u32>>>,
    /// Methods of this entry's jobs (default: the top-level `methods`).
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A spec file as written (types checked, names not yet).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// Short name (default: the file stem).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Methods to run on every problem.
    pub methods: Spanned<Vec<Spanned<String>>>,
    /// Explicit seeds.
    pub seeds: Option<Spanned<Vec<u64>>>,
    /// Seeds 0..repeats.
    pub repeats: Option<Spanned<u64>>,
    /// Selection rules the report uses.
    pub selection: Option<Spanned<Vec<Spanned<String>>>>,
    /// CPU threads per job (local executor; Slurm uses cpus_per_task).
    pub threads: Option<Spanned<usize>>,
    /// Hyper-parameters of every job.
    pub train: Option<Spanned<RawHyper>>,
    /// Per-dataset / per-method overrides, applied in order.
    #[serde(default)]
    pub overrides: Vec<Spanned<RawHyper>>,
    /// Hyper-parameters to sweep: key -> list of values.
    pub grid: Option<BTreeMap<Spanned<String>, Spanned<Vec<toml::Value>>>>,
    /// Problems.
    pub problems: Spanned<Vec<Spanned<RawProblems>>>,
    /// Slurm settings.
    #[serde(default)]
    pub slurm: SlurmSettings,
}

/// A spec's `backbone`: one name space for both kinds of job, each name belonging to one kind
/// (a time-series name leaves image jobs' networks alone, and the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SpecBackbone {
    /// An image network (`codats ssl train --backbone`).
    #[serde(rename = "small-cnn")]
    SmallCnn,
    /// An image network (`codats ssl train --backbone`).
    #[serde(rename = "wrn-28-2")]
    Wrn28_2,
    /// A time-series feature extractor (`codats train --backbone`).
    #[serde(rename = "fcn")]
    Fcn,
    /// A time-series feature extractor (`codats train --backbone`).
    #[serde(rename = "adatime-cnn")]
    AdatimeCnn,
    /// A time-series feature extractor (`codats train --backbone`).
    #[serde(rename = "gru")]
    Gru,
}

impl SpecBackbone {
    /// The image network it names, if it names one.
    pub fn image(self) -> Option<ImageBackbone> {
        match self {
            SpecBackbone::SmallCnn => Some(ImageBackbone::SmallCnn),
            SpecBackbone::Wrn28_2 => Some(ImageBackbone::Wrn28_2),
            _ => None,
        }
    }

    /// The time-series feature extractor it names, if it names one.
    pub fn series(self) -> Option<crate::nn::series::SeriesBackbone> {
        use crate::nn::series::SeriesBackbone as S;
        match self {
            SpecBackbone::Fcn => Some(S::Fcn),
            SpecBackbone::AdatimeCnn => Some(S::AdatimeCnn),
            SpecBackbone::Gru => Some(S::Gru),
            _ => None,
        }
    }
}

/// Hyper-parameters after layering, before per-job defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hyper {
    /// Training steps.
    pub steps: Option<usize>,
    /// Total batch size.
    pub batch_size: Option<usize>,
    /// Batch division.
    pub batch_division: Option<BatchDivision>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Split seed.
    pub split_seed: Option<u64>,
    /// Eval interval.
    pub eval_every: Option<usize>,
    /// Checkpoint interval.
    pub checkpoint_every: Option<usize>,
    /// Few-shot selection windows per class.
    pub few_shot: Option<usize>,
    /// DA-WS noise.
    pub ws_noise: Option<f64>,
    /// `--ws`.
    pub ws: Option<bool>,
    /// Data folder.
    pub data_dir: Option<PathBuf>,
    /// Convolution implementation.
    pub kernels: Option<Kernels>,
    /// Image jobs: labelled images per class.
    pub labels_per_class: Option<usize>,
    /// Image jobs: μ.
    pub uratio: Option<usize>,
    /// Image jobs: unlabelled images at most.
    pub unlabelled_limit: Option<usize>,
    /// Network (image or time-series, by its name).
    pub backbone: Option<SpecBackbone>,
    /// Image jobs: GCT gates.
    pub gct: Option<bool>,
    /// Image jobs: momentum.
    pub momentum: Option<f64>,
    /// Image jobs: batch-norm momentum.
    pub bn_momentum: Option<f64>,
    /// Image jobs: resize.
    pub resize: Option<[u32; 2]>,
    /// Image jobs: channels.
    pub color: Option<ColorMode>,
    /// Image jobs: Nesterov.
    pub nesterov: Option<bool>,
    /// Image jobs: weight decay.
    pub weight_decay: Option<f64>,
    /// Image jobs: cosine decay.
    pub cosine: Option<bool>,
    /// Image jobs: test fraction.
    pub test_fraction: Option<f64>,
    /// Image jobs: validation hold-out.
    pub valid_size: Option<usize>,
}

impl Hyper {
    /// Copies every field set in `raw` over `self`.
    pub fn apply(&mut self, raw: &RawHyper) {
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = &raw.$f { self.$f = Some(v.get_ref().clone()); } )* };
        }
        take!(
            steps,
            batch_size,
            batch_division,
            lr,
            split_seed,
            eval_every,
            checkpoint_every,
            few_shot,
            ws_noise,
            ws,
            data_dir,
            kernels,
            labels_per_class,
            uratio,
            unlabelled_limit,
            backbone,
            gct,
            momentum,
            bn_momentum,
            resize,
            color,
            nesterov,
            weight_decay,
            cosine,
            test_fraction,
            valid_size
        );
    }
}

/// Keys `[grid]` accepts (`ws_noise`: codats_ws jobs only; `labels_per_class` and `uratio`:
/// image jobs only).
pub const GRID_KEYS: [&str; 9] = [
    "steps",
    "batch_size",
    "lr",
    "eval_every",
    "split_seed",
    "ws_noise",
    "ws",
    "labels_per_class",
    "uratio",
];

/// Keys `[grid]` accepts that only image jobs use.
pub const IMAGE_GRID_KEYS: [&str; 2] = ["labels_per_class", "uratio"];

/// A spec's text with its file name, for located errors.
pub struct Source<'a> {
    /// File name as shown in errors.
    pub file: String,
    /// The text.
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based (line, column) of byte offset `pos`.
    pub fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.text.len());
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map(|i| pos - i).unwrap_or(pos + 1);
        (line, col)
    }

    /// An error at `span` about `key`.
    pub fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> SpecError {
        let (line, column) = self.line_col(span.start);
        // One line even when the spec holds a lone `\r` inside a key or value.
        SpecError {
            file: self.file.clone(),
            line,
            column,
            key: crate::data::parse::one_line(&key.into()),
            message: crate::data::parse::one_line(&msg.into()),
        }
    }

    /// The dotted key a TOML parse error at `pos` is about: the enclosing `[table]` header plus
    /// the key written before `=` on that line (or the word at `pos` for an unknown key).
    pub fn key_at(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let line_start = self.text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = self.text[pos..]
            .find('\n')
            .map(|i| pos + i)
            .unwrap_or(self.text.len());
        let line = &self.text[line_start..line_end];
        // `[table]` / `[[array]]` headers (not array values that begin a line).
        let header_name = |l: &str| -> Option<String> {
            let l = l.trim_end();
            if !l.starts_with('[') {
                return None;
            }
            let name = l.trim_start_matches('[').split(']').next()?.trim();
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.\" ".contains(c));
            ok.then(|| name.to_string())
        };
        let header = self.text[..line_start].lines().rev().find_map(header_name);
        let key = if let Some(h) = header_name(line) {
            h
        } else if let Some((k, _)) = line.split_once('=') {
            let k = k.trim().to_string();
            match &header {
                Some(h) if !h.is_empty() => format!("{h}.{k}"),
                _ => k,
            }
        } else {
            // Inside a multi-line value: the nearest `key =` above.
            let above = self.text[..line_start]
                .lines()
                .rev()
                .find_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
                .unwrap_or_default();
            match &header {
                Some(h) if !h.is_empty() => format!("{h}.{above}"),
                _ => above,
            }
        };
        if key.is_empty() {
            "(document)".to_string()
        } else {
            key
        }
    }
}

/// Parses a spec's text (syntax, types, unknown keys). Names and problems are checked by
/// [`super::expand::expand`].
pub fn parse_raw(src: &Source) -> Result<RawSpec, SpecError> {
    toml::from_str::<RawSpec>(src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let key = src.key_at(span.start);
        src.err(span, key, e.message().trim().to_string())
    })
}

/// Reads and parses a spec file.
pub fn read(path: &Path) -> anyhow::Result<(String, RawSpec)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading sweep spec {}: {e}", path.display()))?;
    let src = Source {
        file: path.display().to_string(),
        text: &text,
    };
    let raw = parse_raw(&src)?;
    Ok((text, raw))
}

/// Parses a method name as `codats train --method` does.
pub fn parse_method(name: &str) -> Result<MethodKind, String> {
    <MethodKind as clap::ValueEnum>::from_str(name, false).map_err(|_| {
        format!(
            "unknown method {name:?}; valid methods: {}",
            MethodKind::names()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source<'_> {
        Source {
            file: "t.toml".into(),
            text,
        }
    }

    #[test]
    fn unknown_key_and_wrong_type_are_located() {
        let t = "methods = [\"none\"]\n[train]\nsteps = 10\nstepz = 3\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n";
        let e = parse_raw(&src(t)).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (4, "train.stepz"), "{e}");
        assert!(e.message.contains("unknown field `stepz`"), "{e}");

        let t = "methods = [\"none\"]\n[train]\nsteps = \"ten\"\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n";
        let e = parse_raw(&src(t)).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "train.steps"), "{e}");

        let t = "methods = [\"none\"]\n[[problems]]\ndataset = \"synthetic\"\npairs = [\n  [0, 1],\n  [2, \"x\"],\n]\n";
        let e = parse_raw(&src(t)).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (6, "problems.pairs"), "{e}");
    }
}
