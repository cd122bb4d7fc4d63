//! Training methods. A [`Method`] owns its model and its maths (losses for one batch); the
//! [`crate::train::Trainer`] owns the loop, optimisers, checkpoints and metrics and knows no method.

use candle_core::{Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::data::augment::{ImageShape, Strength};
use crate::data::batch::BatchDivision;
use crate::nn::backbones::ImageBackbone;

pub mod da;
pub mod ema;
#[cfg(test)]
pub(crate) mod probe;
pub mod ssl;
pub mod survey;
pub mod ws;

use da::{
    advskm, cdan, codats, coral, cotmix, dann_gs, dirt_t, dsan, homm, mdan, mmd, rdann, supervised,
    vrada,
};

/// Everything the rest of codats knows about one method besides its maths: one entry of
/// [`REGISTRY`]. CLI value names and help, sweep-spec validation, config checks, report labels,
/// colours and order all read it, so adding a method is its file plus one registry line.
pub struct MethodInfo {
    /// Name on the command line and in config.toml, sweep specs and result files.
    pub name: &'static str,
    /// Other names accepted for it (old spellings).
    pub aliases: &'static [&'static str],
    /// Name in report tables and figures.
    pub label: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// Colour in report figures (RGB).
    pub color: (u8, u8, u8),
    /// Which half of codats it belongs to (`codats train` or `codats ssl train`).
    pub task: Task,
    /// The data it trains on.
    pub needs: DataNeeds,
    /// The batch division the reference uses for it.
    pub batch_division: BatchDivision,
    /// Whether it uses DA-WS target label proportions (`--target-proportions`, `--ws-noise`).
    pub uses_proportions: bool,
    /// Its own hyper-parameters (`--param NAME=VALUE`), with their papers' defaults.
    pub params: &'static [Param],
    /// Image methods: their setting and techniques in Schmarje et al.'s survey (the technique
    /// grid of docs/SSL.md, [`survey::grid`]); `None` for the time-series methods.
    pub survey: Option<survey::Survey>,
    /// The time-series feature extractor the method is defined with (R-DANN: the GRU), which
    /// `--backbone` then defaults to and may not change; `None`: any (the FCN by default).
    pub backbone: Option<crate::nn::series::SeriesBackbone>,
    /// Builds it with its (uninitialised) variables under `vb`.
    pub build: fn(MethodKind, &MethodSetup, VarBuilder) -> Result<Box<dyn Method>>,
}

/// One hyper-parameter of a method: a number with its paper's default and a valid range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    /// Name in `--param NAME=VALUE` and in config.toml's `[method]` table.
    pub name: &'static str,
    /// The default (from the method's paper).
    pub default: f64,
    /// Smallest valid value.
    pub min: f64,
    /// Largest valid value.
    pub max: f64,
    /// One line for `--help` and error messages.
    pub help: &'static str,
}

/// Every method, in the order tables list them.
pub static REGISTRY: &[MethodInfo] = &[
    supervised::NONE,
    codats::CODATS,
    codats::CODATS_WS,
    supervised::TARGET_ONLY,
    coral::CORAL,
    mmd::MMD,
    dann_gs::DANN_GS,
    mdan::MDAN,
    cdan::CDAN,
    homm::HOMM,
    dsan::DSAN,
    advskm::ADVSKM,
    dirt_t::DIRT_T,
    rdann::RDANN,
    vrada::VRADA,
    cotmix::COTMIX,
    ssl::supervised::SUPERVISED,
    ssl::pseudo_label::PSEUDO_LABEL,
    ssl::pi_model::PI_MODEL,
    ssl::mean_teacher::MEAN_TEACHER,
    ssl::vat::VAT,
    ssl::entmin::ENTMIN,
    ssl::fixmatch::FIXMATCH,
    ssl::uic::UIC,
    ssl::deepcluster::DEEPCLUSTER,
    ssl::rotation::ROTATION,
    ssl::noisy_student::NOISY_STUDENT,
    // A test-only method that exercises every hook of the seam (see methods/probe.rs).
    #[cfg(test)]
    probe::PROBE,
];

/// A registered method (an entry of [`REGISTRY`]); parses from and prints as its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MethodKind(usize);

static ALL: std::sync::LazyLock<Vec<MethodKind>> =
    std::sync::LazyLock::new(|| (0..REGISTRY.len()).map(MethodKind).collect());

impl MethodKind {
    /// Source-only training (`none`).
    pub const NONE: MethodKind = MethodKind(0);
    /// CoDATS (`codats`).
    pub const CODATS: MethodKind = MethodKind(1);
    /// CoDATS-WS (`codats_ws`).
    pub const CODATS_WS: MethodKind = MethodKind(2);
    /// Train on Target (`target_only`).
    pub const TARGET_ONLY: MethodKind = MethodKind(3);

    /// Its registry entry.
    pub fn info(self) -> &'static MethodInfo {
        &REGISTRY[self.0]
    }

    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The method called `name` (or one of its aliases).
    pub fn parse(name: &str) -> Option<MethodKind> {
        ALL.iter()
            .copied()
            .find(|m| m.info().name == name || m.info().aliases.contains(&name))
    }

    /// Every method, in the order tables list them.
    pub fn all() -> Vec<MethodKind> {
        ALL.clone()
    }

    /// "none, codats, …": every method's name, for error messages.
    pub fn names() -> String {
        REGISTRY
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// "supervised, pseudo_label, …": the names of one half's methods, for error messages.
    pub fn names_of(task: Task) -> String {
        ALL.iter()
            .filter(|m| m.info().task == task)
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Which data streams the method trains on.
    pub fn data_needs(self) -> DataNeeds {
        self.info().needs
    }

    /// The batch division the reference uses for this method.
    pub fn default_batch_division(self) -> BatchDivision {
        self.info().batch_division
    }

    /// Checks `given` parameter values against the method's own and fills in the defaults:
    /// every parameter of the method, by name. An unknown name or a value out of range is a
    /// one-line error naming it.
    pub fn resolve_params(
        self,
        given: &BTreeMap<String, f64>,
    ) -> std::result::Result<BTreeMap<String, f64>, String> {
        let params = self.info().params;
        if let Some(bad) = given.keys().find(|k| !params.iter().any(|p| p.name == *k)) {
            let known: Vec<&str> = params.iter().map(|p| p.name).collect();
            return Err(format!(
                "--param {bad}: method {self} has no parameter `{bad}` (its parameters: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        let mut out = BTreeMap::new();
        for p in params {
            let v = given.get(p.name).copied().unwrap_or(p.default);
            if !(v.is_finite() && v >= p.min && v <= p.max) {
                return Err(format!(
                    "--param {}={v}: must be a number in [{}, {}] ({})",
                    p.name, p.min, p.max, p.help
                ));
            }
            out.insert(p.name.to_string(), v);
        }
        Ok(out)
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MethodKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MethodKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        MethodKind::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown method {name:?}; valid methods: {}",
                MethodKind::names()
            ))
        })
    }
}

impl clap::ValueEnum for MethodKind {
    fn value_variants<'a>() -> &'a [Self] {
        &ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let i = self.info();
        Some(
            clap::builder::PossibleValue::new(i.name)
                .help(i.help)
                .aliases(i.aliases.iter().copied()),
        )
    }
}

/// Which half of codats a method belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Domain adaptation of time series (`codats train`): labelled sources, unlabelled target.
    Adaptation,
    /// Image classification with few labels (`codats ssl train`): a labelled pool (the one
    /// "source") and an unlabelled pool (the "target", whose labels it never sees).
    Images,
}

impl Task {
    /// Its name in messages (`adaptation`, `images`).
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Adaptation => "adaptation",
            Task::Images => "images",
        }
    }
}

/// The augmented views of each slice a method wants (image problems only), in order: a view is a
/// weak or strong augmentation of the slice's images ([`crate::data::augment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Views {
    /// Views of each labelled slice.
    pub labelled: &'static [Strength],
    /// Views of the unlabelled slice.
    pub unlabelled: &'static [Strength],
}

impl Views {
    /// No views (time series; the raw windows only).
    pub const NONE: Views = Views {
        labelled: &[],
        unlabelled: &[],
    };
}

/// How a method uses the target domain during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetUse {
    /// Not at all.
    None,
    /// Windows only (labels are never handed to the method).
    Unlabelled,
    /// Windows and labels.
    Labelled,
}

/// The data streams a method consumes each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataNeeds {
    /// Labelled source windows, one slice per source domain.
    pub sources: bool,
    /// What of the target it sees.
    pub target: TargetUse,
    /// The augmented views it trains on (image methods).
    pub views: Views,
}

impl DataNeeds {
    /// An unsupervised domain-adaptation method's: the labelled sources and the unlabelled
    /// target, no augmented views.
    pub const ADAPTATION: DataNeeds = DataNeeds {
        sources: true,
        target: TargetUse::Unlabelled,
        views: Views::NONE,
    };
}

/// One labelled (or unlabelled) slice of a batch.
#[derive(Debug, Clone)]
pub struct Slice {
    /// Windows `[n, C, T]`.
    pub x: Tensor,
    /// Labels `[n]` (u32) when the method may see them.
    pub y: Option<Tensor>,
    /// The augmented views its method declared ([`DataNeeds::views`]), in that order, each
    /// shaped as `x` (empty for time series).
    pub views: Vec<Tensor>,
    /// Each row's position in its pool (the order of [`PoolView::x`]), so that a method can keep
    /// per-sample state such as pseudo-labels.
    pub idx: Vec<usize>,
}

/// A pool of training windows a method draws from: a labelled pool (source domain `i`, in
/// source order) or the unlabelled pool (the target's training windows, labels withheld).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The labelled pool of source `i`.
    Labelled(usize),
    /// The unlabelled pool.
    Unlabelled,
}

/// When [`Method::on_epoch`] runs: before the first update and then at every boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// Every this many updates.
    Updates(usize),
    /// Once per pass over the hook's pool at the rows per step the batch gives it
    /// (⌈pool size / rows per step⌉ updates).
    Epoch,
}

/// A method's request to see a whole pool at epoch boundaries (relabelling, k-means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochHook {
    /// Which pool.
    pub pool: Pool,
    /// How often.
    pub every: Every,
    /// Whether [`PoolView::logits`] is wanted (a pass over the whole pool); when false the
    /// view's logits are an empty `[0, 0]` tensor.
    pub logits: bool,
}

/// A whole pool as [`Method::on_epoch`] sees it: every window (no labels, whatever the pool)
/// and the method's own eval-mode logits for each ([`Method::predict`]), rows in pool order.
pub struct PoolView<'a> {
    /// Which pool.
    pub pool: Pool,
    /// Windows `[n, C, T]`.
    pub x: &'a Tensor,
    /// Logits `[n, classes]` (`[0, 0]` when the hook asked for none, [`EpochHook::logits`]).
    pub logits: Tensor,
}

/// One training step's data: a slice per source domain (in source order) and the target slice.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Source slices; source i has domain label i + 1.
    pub sources: Vec<Slice>,
    /// The target slice (domain label 0), when the method uses the target.
    pub target: Option<Slice>,
}

/// What the trainer tells a method about the current step.
pub struct StepContext<'a> {
    /// 0-based step index.
    pub step: usize,
    /// Total steps of the run.
    pub total_steps: usize,
    /// The run's RNG for stochastic layers (dropout); part of the checkpointed state.
    pub rng: &'a mut ChaCha8Rng,
}

/// The loss to minimise and scalars to log.
pub struct StepOutput {
    /// Total loss; the trainer back-propagates it once and every optimiser group steps on it.
    pub loss: Tensor,
    /// Named scalars for metrics.csv and the progress bar (e.g. `task_loss`, `lambda`).
    pub scalars: Vec<(&'static str, f32)>,
    /// Train-mode task logits of the batch's unlabelled target rows, from the forward pass the
    /// loss was computed on, for losses composed onto the method's (DA-WS, [`ws`]); `None`
    /// from a method that sees no unlabelled target.
    pub target_logits: Option<Tensor>,
}

/// A set of parameters (selected by name prefix) with its own optimiser state.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroup {
    /// Name used in checkpoints.
    pub name: &'static str,
    /// Parameters whose name starts with this prefix ("" = all trainable parameters).
    pub prefix: &'static str,
    /// The group's learning rate is the run's `lr` times this.
    pub lr_scale: f64,
    /// L2 weight decay added to the group's gradients (0: none, as Keras' Adam).
    pub weight_decay: f64,
}

impl ParamGroup {
    /// A group at the run's learning rate without weight decay.
    pub const fn new(name: &'static str, prefix: &'static str) -> Self {
        Self {
            name,
            prefix,
            lr_scale: 1.0,
            weight_decay: 0.0,
        }
    }
}

/// A training algorithm (`Send`, so that a training step can run on a worker thread).
///
/// The trainer calls, per update: [`Method::on_epoch`] when an [`EpochHook`] boundary is due,
/// [`Method::step`], one backward pass and every optimiser group's step, then
/// [`Method::after_step`]. Evaluation and model selection use [`Method::predict`], so a method
/// that evaluates other weights (an EMA teacher) predicts with them; every variable it creates
/// is saved with the selected weights. [`Method::state`] is checkpointed with the run.
pub trait Method: Send {
    /// Which method this is.
    fn kind(&self) -> MethodKind;
    /// Names of the scalars [`Method::step`] returns, in metrics.csv column order (a scalar
    /// not listed here makes the run fail at its next evaluation instead of being dropped).
    fn scalars(&self) -> Vec<&'static str>;
    /// Computes the loss for one batch (training mode).
    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput>;
    /// Eval-mode task logits for windows `[B, C, T]`.
    fn predict(&self, x: &Tensor) -> Result<Tensor>;
    /// Which weights [`Method::predict`] uses, as result.json records it: `raw` (the trained
    /// ones, the default) or `ema` (an exponential moving average of them).
    fn evaluated_weights(&self) -> &'static str {
        "raw"
    }
    /// Eval-mode features of windows `[B, C, T]` (images `[B, C, H, W]`) from the weights
    /// [`Method::predict`] uses: the representation the linear and kNN probes read
    /// (`codats ssl probe`). `None` (the default) when the method exposes none.
    fn features(&self, _x: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// Optimiser groups. All step on the same gradients of [`StepOutput::loss`], in order.
    /// Default: one group, `model`, over every trainable parameter.
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("model", "")]
    }
    /// Runs once after the trainer's seeded initialisation, with the run's variables (an EMA
    /// teacher starts as a copy of its student). Default: nothing.
    fn after_init(&mut self, _vars: &VarMap) -> Result<()> {
        Ok(())
    }
    /// Runs after every optimiser step, with the run's variables (e.g. an EMA teacher's update,
    /// [`ema::Ema`]). Default: nothing.
    fn after_step(&mut self, _vars: &VarMap, _ctx: &mut StepContext) -> Result<()> {
        Ok(())
    }
    /// The pool the method wants to see at epoch boundaries, and how often. Default: none.
    fn epoch_hook(&self) -> Option<EpochHook> {
        None
    }
    /// At each boundary of [`Method::epoch_hook`] (before the first update, then every
    /// interval), with the method's predictions on the whole pool.
    fn on_epoch(&mut self, _pool: &PoolView, _ctx: &mut StepContext) -> Result<()> {
        Ok(())
    }
    /// The order in which the trainer is to draw the epoch-hook pool's rows until the next
    /// boundary, asked right after each [`Method::on_epoch`]: positions in the pool (the order
    /// of [`PoolView::x`]), repetitions allowed (a class-balanced resampler). The trainer
    /// takes consecutive rows of it per step, starting over at its beginning if the interval
    /// needs more; the order and position are checkpointed with the trainer's streams. `None`
    /// (the default): the trainer's own shuffled stream.
    fn draw_order(&mut self) -> Option<Vec<usize>> {
        None
    }
    /// `Some(K)` when the method predicts K clusters rather than the problem's classes (deep
    /// clustering): evaluation then scores its predictions by clustering metrics
    /// ([`crate::eval::cluster`]) — Hungarian accuracy for model selection and metrics.csv,
    /// and result.json's `clustering` — instead of accuracy. Default: `None`.
    fn clusters(&self) -> Option<usize> {
        None
    }
    /// The method's current label of every row of its epoch-hook pool (pool order), when it
    /// keeps such labels (self-labelling, clustering); empty before the first boundary. For
    /// evaluation only: the trainer logs their NMI against the pool's hidden labels as
    /// metrics.csv's `pool_nmi`; the method never sees those labels. Default: `None`.
    fn pool_labels(&self) -> Option<&[u32]> {
        None
    }
    /// The method's own resumable state (pseudo-labels, sampler state), saved with each
    /// checkpoint; `Null` (the default) when it has none.
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
    /// Restores what [`Method::state`] saved.
    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        if state.is_null() {
            return Ok(());
        }
        candle_core::bail!(
            "the checkpoint holds method state but {} keeps none",
            self.kind()
        )
    }
}

/// Settings a method needs at construction.
#[derive(Debug, Clone)]
pub struct MethodSetup {
    /// Input channels.
    pub channels: usize,
    /// Classes.
    pub classes: usize,
    /// Number of source domains.
    pub n_sources: usize,
    /// DA-WS proportions given by the user (`--target-proportions`).
    pub given_proportions: Option<Vec<f64>>,
    /// The target train split's label proportions: the one target-label statistic a method is
    /// permitted to see, handed only to methods whose entry declares `uses_proportions`.
    pub target_train_proportions: Option<Vec<f64>>,
    /// `--ws-noise`: move the proportions by this L1 distance.
    pub ws_noise: Option<f64>,
    /// `--ws`: the DA-WS loss on top of the method's own ([`ws::WeakSupervision`]); implied by
    /// an entry that declares `uses_proportions`.
    pub ws: bool,
    /// The run seed (derive per-purpose seeds with `crate::seed::derive_seed`).
    pub seed: u64,
    /// FCN implementation.
    pub kernels: crate::nn::Kernels,
    /// GCT gates in front of the FCN's convolutions (`--gct`; with `kernels` candle).
    pub gct: bool,
    /// The time-series feature extractor (`--backbone`).
    pub backbone: crate::nn::series::SeriesBackbone,
    /// The method's own parameters, checked and with defaults filled in
    /// ([`MethodKind::resolve_params`]).
    pub params: BTreeMap<String, f64>,
    /// The image network of an image problem.
    pub image: Option<ImageSetup>,
}

/// The network of an image method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageSetup {
    /// Input image shape.
    pub shape: ImageShape,
    /// Which backbone.
    pub backbone: ImageBackbone,
    /// GCT gates in front of the convolutions.
    pub gct: bool,
    /// Batch-norm running-statistics momentum (PyTorch terms).
    pub bn_momentum: f64,
    /// Images in the unlabelled pool (a clustering method's K must not exceed it).
    pub pool_size: usize,
    /// The network of the run's teacher (Noisy Student's `--teacher`), whose weights the
    /// trainer loads under `teacher.*`; `None` without one.
    pub teacher: Option<TeacherNet>,
}

/// The architecture of a teacher network (it may differ from the student's: equal or smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeacherNet {
    /// Which backbone.
    pub backbone: ImageBackbone,
    /// GCT gates in front of its convolutions.
    pub gct: bool,
}

impl MethodSetup {
    /// The CoDATS network for this problem, with a domain head of `domains` outputs or none.
    pub fn model_config(&self, domains: Option<usize>) -> crate::nn::ModelConfig {
        crate::nn::ModelConfig {
            channels: self.channels,
            classes: self.classes,
            domains,
            kernels: self.kernels,
            gct: self.gct,
            backbone: self.backbone,
        }
    }

    /// The value of the method parameter `name` (present after [`MethodKind::resolve_params`]).
    pub fn param(&self, name: &str) -> Result<f64> {
        self.params
            .get(name)
            .copied()
            .ok_or_else(|| candle_core::Error::Msg(format!("method parameter `{name}` is not set")))
    }
}

/// Builds the method `kind` with its variables in `varmap` (uninitialised: the trainer seeds them).
pub fn build(kind: MethodKind, setup: &MethodSetup, varmap: &VarMap) -> Result<Box<dyn Method>> {
    let vb = VarBuilder::from_varmap(varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
    let method = (kind.info().build)(kind, setup, vb)?;
    if kind.info().uses_proportions || setup.ws {
        return Ok(Box::new(ws::WeakSupervision::wrap(method, setup)?));
    }
    Ok(method)
}

/// Trainable variables of `varmap` whose names start with `prefix`, sorted by name
/// (BatchNorm running statistics are state, not parameters, and are left out).
pub fn trainable_vars(varmap: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut v: Vec<(String, Var)> = data
        .iter()
        .filter(|(n, _)| {
            n.starts_with(prefix) && !n.ends_with("running_mean") && !n.ends_with("running_var")
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Concatenates slices' windows (and labels when all have them) along the batch axis.
pub fn concat(slices: &[&Slice]) -> Result<(Tensor, Option<Tensor>)> {
    let xs: Vec<&Tensor> = slices.iter().map(|s| &s.x).collect();
    let x = Tensor::cat(&xs, 0)?;
    let y = if slices.iter().all(|s| s.y.is_some()) {
        let ys: Vec<&Tensor> = slices
            .iter()
            .map(|s| s.y.as_ref().expect("checked"))
            .collect();
        Some(Tensor::cat(&ys, 0)?)
    } else {
        None
    };
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::BatchDivision;

    #[test]
    fn default_batch_division_follows_the_reference() {
        assert_eq!(
            MethodKind::NONE.default_batch_division(),
            BatchDivision::All
        );
        assert_eq!(
            MethodKind::CODATS.default_batch_division(),
            BatchDivision::All
        );
        assert_eq!(
            MethodKind::CODATS_WS.default_batch_division(),
            BatchDivision::Sources
        );
        assert_eq!(
            MethodKind::TARGET_ONLY.default_batch_division(),
            BatchDivision::All
        );
    }

    #[test]
    fn target_only_is_named_so_and_accepts_upper() {
        use clap::ValueEnum;
        assert_eq!(MethodKind::TARGET_ONLY.as_str(), "target_only");
        assert_eq!(
            MethodKind::from_str("upper", false),
            Ok(MethodKind::TARGET_ONLY)
        );
        assert_eq!(
            MethodKind::from_str("target_only", false),
            Ok(MethodKind::TARGET_ONLY)
        );
        let m: MethodKind = serde_json::from_str("\"upper\"").unwrap();
        assert_eq!(m, MethodKind::TARGET_ONLY);
        let err = serde_json::from_str::<MethodKind>("\"dann\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("unknown method \"dann\"; valid methods: none, codats"),
            "{err}"
        );
    }

    #[test]
    fn method_parameters_are_checked_by_name() {
        let given: BTreeMap<String, f64> = [("x".to_string(), 1.0)].into();
        assert_eq!(
            MethodKind::NONE.resolve_params(&given).unwrap_err(),
            "--param x: method none has no parameter `x` (its parameters: none)"
        );
        assert!(MethodKind::CODATS
            .resolve_params(&BTreeMap::new())
            .unwrap()
            .is_empty());
        // Every registered default lies in its own range.
        for m in MethodKind::all() {
            let resolved = m.resolve_params(&BTreeMap::new()).unwrap();
            assert_eq!(resolved.len(), m.info().params.len(), "{m}");
        }
    }

    #[test]
    fn the_registry_is_consistent() {
        // The named constants point at the entries they name.
        for (k, name) in [
            (MethodKind::NONE, "none"),
            (MethodKind::CODATS, "codats"),
            (MethodKind::CODATS_WS, "codats_ws"),
            (MethodKind::TARGET_ONLY, "target_only"),
        ] {
            assert_eq!(k.as_str(), name);
        }
        // Names and aliases are unique, and each parses back to its method.
        let mut seen = std::collections::HashSet::new();
        for m in MethodKind::all() {
            for n in std::iter::once(m.as_str()).chain(m.info().aliases.iter().copied()) {
                assert!(seen.insert(n), "{n} registered twice");
                assert_eq!(MethodKind::parse(n), Some(m));
            }
        }
    }
}
