//! Turns a parsed spec into the checked, ordered job list (the "plan"): problems × methods ×
//! grid values × seeds, each with its resolved hyper-parameters. Time-series problems become
//! `codats train` jobs, image problems `codats ssl train` jobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rand::seq::index::sample;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::spec::{
    parse_method, Hyper, RawHyper, RawProblems, RawSpec, SlurmSettings, Source, SpecError,
    GRID_KEYS, IMAGE_GRID_KEYS,
};
use crate::config::{code_version, ImageOptions, TrainConfig};
use crate::data::batch::BatchDivision;
use crate::data::images::catalog::ImageDataset;
use crate::data::registry::DatasetName;
use crate::methods::{MethodKind, Task};
use crate::nn::Kernels;
use crate::problem::describe_ids;
use crate::train::derive_seed;
use crate::train::selection::names as rule_names;

use crate::config::defaults;

/// One training run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Unique name; also the run directory's name under `runs/`.
    pub id: String,
    /// Dataset name.
    pub dataset: String,
    /// `sources->target`, e.g. `14->19` (the unit the report pairs methods on); an image job's
    /// is its labelled pool, `labels_per_class=10`.
    pub problem: String,
    /// Source domain ids (sorted for generated problems, as written otherwise); an image job's
    /// is `[1]`, its labelled pool.
    pub sources: Vec<u32>,
    /// Target domain id; an image job's is 0, its unlabelled pool.
    pub target: u32,
    /// Method.
    pub method: MethodKind,
    /// Grid values of this job (`ws_noise=0.1`), empty without a grid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Training steps.
    pub steps: usize,
    /// Total batch size.
    pub batch_size: usize,
    /// Batch division (None: the method's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_division: Option<BatchDivision>,
    /// Learning rate.
    pub lr: f64,
    /// Split seed.
    pub split_seed: u64,
    /// Evaluation interval.
    pub eval_every: usize,
    /// Checkpoint interval (None: eval_every).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// `--few-shot`: labelled target windows per class of the few-shot selection rule (0: off).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub few_shot: usize,
    /// DA-WS proportion noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_noise: Option<f64>,
    /// `--ws`: DA-WS on top of the method.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ws: bool,
    /// Time-series feature extractor (None: the method's, else the FCN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<crate::nn::series::SeriesBackbone>,
    /// Data folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Convolution implementation (None: the command's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<Kernels>,
    /// An image job's pools, network and SGD recipe (`codats ssl train`); None for
    /// time-series jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageOptions>,
}

impl Job {
    /// The arguments of this job's command (without `--out`, `--threads`, `--quiet`):
    /// `codats train ...`, or `codats ssl train ...` for an image job. Every setting is spelled
    /// out, so that a job does not depend on the command's defaults.
    pub fn train_args(&self) -> Vec<String> {
        let (mut a, mut pairs): (Vec<String>, Vec<(&str, String)>) = match &self.images {
            Some(im) => (
                vec!["ssl".into(), "train".into()],
                vec![
                    ("--dataset", self.dataset.clone()),
                    ("--labels-per-class", im.labels_per_class.to_string()),
                ],
            ),
            None => {
                let mut p = vec![("--dataset", self.dataset.clone())];
                if !self.sources.is_empty() {
                    p.push(("--sources", describe_list(&self.sources)));
                }
                p.push(("--target", self.target.to_string()));
                (vec!["train".into()], p)
            }
        };
        pairs.extend([
            ("--method", self.method.as_str().to_string()),
            ("--seed", self.seed.to_string()),
            ("--steps", self.steps.to_string()),
            ("--batch-size", self.batch_size.to_string()),
            ("--lr", self.lr.to_string()),
            ("--split-seed", self.split_seed.to_string()),
            ("--eval-every", self.eval_every.to_string()),
        ]);
        for (name, value) in pairs {
            a.extend([name.to_string(), value]);
        }
        match &self.images {
            Some(im) => image_flags(im, &mut a),
            None => {
                if let Some(d) = self.batch_division {
                    a.extend(["--batch-division".into(), d.as_str().into()]);
                }
                if self.ws {
                    a.push("--ws".into());
                }
                if let Some(n) = self.ws_noise {
                    a.extend(["--ws-noise".into(), n.to_string()]);
                }
                if let Some(b) = self.backbone {
                    a.extend(["--backbone".into(), b.as_str().into()]);
                }
                if self.few_shot > 0 {
                    a.extend(["--few-shot".into(), self.few_shot.to_string()]);
                }
            }
        }
        if let Some(c) = self.checkpoint_every {
            a.extend(["--checkpoint-every".into(), c.to_string()]);
        }
        if let Some(k) = self.kernels {
            a.extend(["--kernels".into(), k.as_str().into()]);
        }
        if let Some(d) = &self.data_dir {
            a.extend(["--data-dir".into(), d.display().to_string()]);
        }
        if self.images.is_none() {
            a.push("--offline".into());
        }
        a
    }

    /// The arguments that continue this job's interrupted run (with `--out`): its config.toml
    /// decides everything else.
    pub fn resume_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if self.images.is_some() {
            a.push("ssl".into());
        }
        a.extend(["train".into(), "--resume".into()]);
        a
    }

    /// The run configuration `codats train` (or `codats ssl train`) will save for this job
    /// (with `threads`).
    pub fn train_config(&self, threads: usize) -> TrainConfig {
        let batch_division = match &self.images {
            Some(_) => BatchDivision::None,
            None => self
                .batch_division
                .unwrap_or(self.method.default_batch_division()),
        };
        TrainConfig {
            dataset: self.dataset.clone(),
            data_dir: self.data_dir.clone(),
            sources: self.sources.clone(),
            target: self.target,
            method: crate::config::MethodConfig {
                ws_noise: self.ws_noise,
                ws: self.ws,
                ..crate::config::MethodConfig::new(self.method)
            },
            steps: self.steps,
            batch_size: self.batch_size,
            batch_division,
            lr: self.lr,
            seed: self.seed,
            split_seed: self.split_seed,
            conventions: crate::config::CONVENTIONS,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every.unwrap_or(self.eval_every).max(1),
            threads,
            // As `codats ssl train` picks them: GCT and wrn-28-2 run on the plain path.
            kernels: self.kernels.unwrap_or(match &self.images {
                Some(im)
                    if im.gct || im.backbone != crate::nn::backbones::ImageBackbone::SmallCnn =>
                {
                    crate::nn::Kernels::Candle
                }
                _ => crate::nn::Kernels::default(),
            }),
            gct: false,
            // As `codats train` picks it: the method's own (rdann: the GRU), else the FCN.
            backbone: self
                .backbone
                .or(self.method.info().backbone)
                .unwrap_or_default(),
            data: Default::default(),
            images: self.images.clone(),
            few_shot: self.few_shot,
            code_version: code_version(),
        }
    }

    /// Method name with the grid variant, as tables label it (`codats_ws [ws_noise=0.1]`).
    pub fn method_label(&self) -> String {
        if self.variant.is_empty() {
            self.method.as_str().to_string()
        } else {
            format!("{} [{}]", self.method.as_str(), self.variant)
        }
    }
}

/// `1,2,3`.
fn describe_list(v: &[u32]) -> String {
    v.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `codats ssl train`'s flags of an `[images]` table, every value spelled out.
fn image_flags(im: &ImageOptions, a: &mut Vec<String>) {
    for (name, value) in [
        ("--uratio", im.uratio.to_string()),
        ("--backbone", im.backbone.as_str().to_string()),
        ("--momentum", im.momentum.to_string()),
        ("--bn-momentum", im.bn_momentum.to_string()),
        ("--weight-decay", im.weight_decay.to_string()),
        ("--test-fraction", im.test_fraction.to_string()),
        ("--valid-size", im.valid_size.to_string()),
    ] {
        a.extend([name.to_string(), value]);
    }
    if let Some(n) = im.unlabelled_limit {
        a.extend(["--unlabelled-limit".into(), n.to_string()]);
    }
    if let Some([w, h]) = im.resize {
        a.extend(["--resize".into(), format!("{w}x{h}")]);
    }
    if !im.color.is_gray() {
        a.extend(["--color".into(), im.color.as_str().into()]);
    }
    for (on, name) in [
        (im.gct, "--gct"),
        (!im.nesterov, "--no-nesterov"),
        (!im.cosine, "--no-cosine"),
    ] {
        if on {
            a.push(name.into());
        }
    }
}

/// A checked spec expanded into jobs; saved as `jobs.json` in the sweep directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The spec's name.
    pub name: String,
    /// Selection rules the report's tables use.
    pub selection: Vec<String>,
    /// Threads per job the spec asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Slurm settings of the spec.
    #[serde(default)]
    pub slurm: SlurmSettings,
    /// The jobs, in run order.
    pub jobs: Vec<Job>,
}

/// Looks up a dataset's domain ids (to check problems before any job starts).
pub type DomainIds<'a> = dyn FnMut(DatasetName, Option<&Path>) -> Result<Vec<u32>, String> + 'a;

/// Domain ids as the dataset defines them: known without loading for `synthetic` and `ucihar`,
/// else read by loading the dataset (offline) once.
pub fn dataset_domain_ids(name: DatasetName, data_dir: Option<&Path>) -> Result<Vec<u32>, String> {
    match name.as_str() {
        "ucihar" => Ok((1..=30).collect()),
        "synthetic" => Ok(crate::data::synthetic::generate(
            &crate::data::synthetic::SyntheticConfig::default(),
        )
        .domain_ids()),
        _ => crate::data::registry::load(name, data_dir, true, false)
            .map(|d| d.domain_ids())
            .map_err(|e| {
                format!(
                    "cannot check the domain ids of {}: {e} (download it first with `codats datasets download {}`)",
                    name.as_str(),
                    name.as_str()
                )
            }),
    }
}

/// A dataset a spec names: a time-series one (`codats train` jobs on its domains) or an image
/// one (`codats ssl train` jobs, no domains).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecDataset {
    /// A time-series dataset.
    Series(DatasetName),
    /// An image dataset.
    Images(ImageDataset),
}

impl SpecDataset {
    /// The dataset called `name`; the error lists both kinds.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(d) = ImageDataset::parse(name) {
            return Ok(SpecDataset::Images(d));
        }
        DatasetName::parse(name)
            .map(SpecDataset::Series)
            .map_err(|e| {
                format!(
                    "{e}; image datasets: {}",
                    ImageDataset::ALL.map(|d| d.as_str()).join(", ")
                )
            })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecDataset::Series(d) => d.as_str(),
            SpecDataset::Images(d) => d.as_str(),
        }
    }

    /// Which half of codats trains on it.
    pub fn task(self) -> Task {
        match self {
            SpecDataset::Series(_) => Task::Adaptation,
            SpecDataset::Images(_) => Task::Images,
        }
    }
}

/// Which datasets of a spec to keep (`--only`); `None` keeps all.
pub type DatasetFilter<'a> = Option<&'a [String]>;

struct Ctx<'a, 'b> {
    src: &'a Source<'b>,
}

impl Ctx<'_, '_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        msg: impl Into<String>,
    ) -> Result<T, SpecError> {
        Err(self.src.err(span, key, msg))
    }
}

fn n_choose_k(n: usize, k: usize) -> u128 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut r: u128 = 1;
    for i in 0..k {
        r = r * (n - i) as u128 / (i + 1) as u128;
        if r > u64::MAX as u128 {
            return r;
        }
    }
    r
}

/// `subsets` distinct random `n`-subsets (each sorted) of `pool`, seeded per (seed, target, n).
pub fn random_subsets(
    pool: &[u32],
    n: usize,
    subsets: usize,
    seed: u64,
    target: u32,
) -> Vec<Vec<u32>> {
    let want = (subsets as u128).min(n_choose_k(pool.len(), n)) as usize;
    let mut rng =
        ChaCha8Rng::seed_from_u64(derive_seed(seed, (u64::from(target) << 20) ^ n as u64));
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut attempts = 0;
    while out.len() < want && attempts < 1_000_000 {
        attempts += 1;
        let mut s: Vec<u32> = sample(&mut rng, pool.len(), n)
            .into_iter()
            .map(|i| pool[i])
            .collect();
        s.sort_unstable();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Checks `raw` (read from `src`) and expands it into jobs. `only` keeps some datasets; `ids`
/// gives a dataset's domain ids (see [`dataset_domain_ids`]).
pub fn expand(
    src: &Source,
    raw: &RawSpec,
    only: DatasetFilter,
    ids: &mut DomainIds,
) -> Result<Plan, SpecError> {
    let cx = Ctx { src };
    let methods = read_methods(&cx, &raw.methods, "methods")?;
    let seeds = read_seeds(&cx, raw)?;
    let selection = read_selection(&cx, raw)?;
    if let Some(t) = &raw.threads {
        if *t.get_ref() == 0 {
            return cx.err(t.span(), "threads", "must be at least 1");
        }
    }
    let overrides = read_overrides(&cx, raw)?;
    let grid = read_grid(&cx, src, raw)?;
    check_image_grid(&cx, raw)?;
    if raw.problems.get_ref().is_empty() {
        return cx.err(
            raw.problems.span(),
            "problems",
            "needs at least one [[problems]] entry",
        );
    }
    let mut ids_cache: HashMap<&'static str, Vec<u32>> = HashMap::new();
    let mut jobs = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (pi, entry) in raw.problems.get_ref().iter().enumerate() {
        let pkey = format!("problems[{pi}]");
        let p = entry.get_ref();
        if let Some(only) = only {
            if !only.iter().any(|o| o == p.dataset.get_ref()) {
                continue;
            }
        }
        let dataset = SpecDataset::parse(p.dataset.get_ref())
            .or_else(|e| cx.err(p.dataset.span(), &format!("{pkey}.dataset"), e))?;
        let entry_methods = match &p.methods {
            Some(m) => read_methods(&cx, m, &format!("{pkey}.methods"))?,
            None => methods.clone(),
        };
        check_tasks(&cx, raw, &pkey, p, dataset)?;
        let problems = match dataset {
            SpecDataset::Series(series) => {
                let base = resolve(raw, &overrides, dataset, None);
                let domain_ids = match ids_cache.get(series.as_str()) {
                    Some(v) => v.clone(),
                    None => {
                        let v = ids(series, base.data_dir.as_deref())
                            .or_else(|e| cx.err(p.dataset.span(), &format!("{pkey}.dataset"), e))?;
                        ids_cache.insert(series.as_str(), v.clone());
                        v
                    }
                };
                problems_of(&cx, &pkey, entry.span(), p, series, &domain_ids)?
            }
            SpecDataset::Images(_) => {
                check_image_problem(&cx, &pkey, entry.span(), p)?;
                // The labelled pool is the one "source", the unlabelled pool the "target".
                vec![(vec![1], 0)]
            }
        };
        for (sources, target) in problems {
            for &method in &entry_methods {
                let hyper = resolve(raw, &overrides, dataset, Some(method));
                for (h, labels) in grid_combos(&grid, dataset, method, hyper) {
                    let problem = match (dataset, h.labels_per_class) {
                        (SpecDataset::Series(_), _) => {
                            format!("{}->{}", describe_ids(&sources), target)
                        }
                        (SpecDataset::Images(_), Some(l)) => format!("labels_per_class={l}"),
                        (SpecDataset::Images(_), None) => {
                            return cx.err(
                                entry.span(),
                                &pkey,
                                format!(
                                    "image problems need `labels_per_class` (for method {method}): \
                                     set it in [train], [[overrides]] or [grid]"
                                ),
                            )
                        }
                    };
                    for &seed in &seeds {
                        let key = JobKey {
                            dataset,
                            problem: &problem,
                            sources: &sources,
                            target,
                            method,
                            labels: &labels,
                            seed,
                        };
                        let job = make_job(&key, &h);
                        let id = job.id.clone();
                        if let Err(e) = job.train_config(1).check() {
                            return cx.err(
                                entry.span(),
                                &pkey,
                                format!("problem {problem} with method {method}: {e}"),
                            );
                        }
                        if let Some(prev) = seen.insert(id.clone(), pi) {
                            return cx.err(
                                entry.span(),
                                &pkey,
                                format!("job {id} is already produced by problems[{prev}]; each problem may appear once"),
                            );
                        }
                        jobs.push(job);
                    }
                }
            }
        }
    }
    if jobs.is_empty() {
        return cx.err(
            raw.problems.span(),
            "problems",
            "no jobs: every problem was filtered out",
        );
    }
    let name = raw.name.clone().unwrap_or_else(|| {
        Path::new(&src.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into())
    });
    Ok(Plan {
        name,
        selection,
        threads: raw.threads.as_ref().map(|t| *t.get_ref()),
        slurm: raw.slurm.clone(),
        jobs,
    })
}

/// A `methods` list (at `key`): registered, each listed once.
fn read_methods(
    cx: &Ctx,
    list: &toml::Spanned<Vec<toml::Spanned<String>>>,
    key: &str,
) -> Result<Vec<MethodKind>, SpecError> {
    if list.get_ref().is_empty() {
        return cx.err(list.span(), key, "needs at least one method");
    }
    let mut methods = Vec::new();
    for (i, m) in list.get_ref().iter().enumerate() {
        let kind =
            parse_method(m.get_ref()).or_else(|e| cx.err(m.span(), &format!("{key}[{i}]"), e))?;
        if methods.contains(&kind) {
            return cx.err(
                m.span(),
                &format!("{key}[{i}]"),
                format!("method {kind} is listed twice"),
            );
        }
        methods.push(kind);
    }
    Ok(methods)
}

/// Every method of problem entry `p` (its own `methods`, else the top-level ones) is of the
/// half of codats that trains on its dataset.
fn check_tasks(
    cx: &Ctx,
    raw: &RawSpec,
    pkey: &str,
    p: &RawProblems,
    dataset: SpecDataset,
) -> Result<(), SpecError> {
    let (list, key) = match &p.methods {
        Some(m) => (m, format!("{pkey}.methods")),
        None => (&raw.methods, "methods".to_string()),
    };
    for (i, m) in list.get_ref().iter().enumerate() {
        let Ok(kind) = parse_method(m.get_ref()) else {
            continue;
        };
        let task = kind.info().task;
        if task == dataset.task() {
            continue;
        }
        let (what, kind_of_dataset, its_methods) = match task {
            Task::Images => (
                "an image method (`codats ssl train`)",
                "a time-series dataset",
                "time-series methods",
            ),
            Task::Adaptation => (
                "a time-series adaptation method (`codats train`)",
                "an image dataset",
                "image methods",
            ),
        };
        let own = if p.methods.is_none() {
            "; give that entry its own `methods`"
        } else {
            ""
        };
        return cx.err(
            m.span(),
            &format!("{key}[{i}]"),
            format!(
                "method {kind} is {what} but {pkey} is {}, {kind_of_dataset}{own} ({its_methods}: {})",
                dataset.as_str(),
                MethodKind::names_of(dataset.task())
            ),
        );
    }
    Ok(())
}

/// An image problem names its dataset (and maybe `methods`) only: it has no domains.
fn check_image_problem(
    cx: &Ctx,
    key: &str,
    span: std::ops::Range<usize>,
    p: &RawProblems,
) -> Result<(), SpecError> {
    let spans = [
        ("pairs", p.pairs.as_ref().map(|v| v.span())),
        ("sources", p.sources.as_ref().map(|v| v.span())),
        ("target", p.target.as_ref().map(|v| v.span())),
        ("targets", p.targets.as_ref().map(|v| v.span())),
        ("n_sources", p.n_sources.as_ref().map(|v| v.span())),
        ("subsets", p.subsets.as_ref().map(|v| v.span())),
        ("pool", p.pool.as_ref().map(|v| v.span())),
        ("seed", p.seed.map(|_| span.clone())),
    ];
    if let Some((name, Some(at))) = spans.into_iter().find(|(_, s)| s.is_some()) {
        return cx.err(
            at,
            &format!("{key}.{name}"),
            format!(
                "{} is an image dataset: its problems have no domains, so `{name}` does not apply \
                 (the labelled pool is `labels_per_class`, in [train], [[overrides]] or [grid])",
                p.dataset.get_ref()
            ),
        );
    }
    Ok(())
}

/// `[grid]` keys that only image jobs use need an image problem in the spec.
fn check_image_grid(cx: &Ctx, raw: &RawSpec) -> Result<(), SpecError> {
    let Some(g) = &raw.grid else { return Ok(()) };
    let has_images = raw
        .problems
        .get_ref()
        .iter()
        .any(|p| ImageDataset::parse(p.get_ref().dataset.get_ref()).is_some());
    for k in g.keys() {
        if IMAGE_GRID_KEYS.contains(&k.get_ref().as_str()) && !has_images {
            return cx.err(
                k.span(),
                &format!("grid.{}", k.get_ref()),
                format!(
                    "{:?} only applies to image problems ({}) and this spec has none",
                    k.get_ref(),
                    ImageDataset::ALL.map(|d| d.as_str()).join(", ")
                ),
            );
        }
    }
    Ok(())
}

/// `seeds` or `repeats` (default: seed 0).
fn read_seeds(cx: &Ctx, raw: &RawSpec) -> Result<Vec<u64>, SpecError> {
    Ok(match (&raw.seeds, &raw.repeats) {
        (Some(s), Some(_)) => {
            return cx.err(
                s.span(),
                "seeds",
                "give either `seeds` or `repeats`, not both",
            )
        }
        (Some(s), None) => {
            let v = s.get_ref().clone();
            if v.is_empty() {
                return cx.err(s.span(), "seeds", "needs at least one seed");
            }
            let uniq: BTreeSet<u64> = v.iter().copied().collect();
            if uniq.len() != v.len() {
                return cx.err(s.span(), "seeds", "a seed is listed twice");
            }
            v
        }
        (None, Some(r)) => {
            if *r.get_ref() == 0 {
                return cx.err(r.span(), "repeats", "must be at least 1");
            }
            (0..*r.get_ref()).collect()
        }
        (None, None) => vec![0],
    })
}

/// `selection`: known rules (default: `best_target`).
fn read_selection(cx: &Ctx, raw: &RawSpec) -> Result<Vec<String>, SpecError> {
    Ok(match &raw.selection {
        None => vec!["best_target".to_string()],
        Some(s) => {
            if s.get_ref().is_empty() {
                return cx.err(s.span(), "selection", "needs at least one rule");
            }
            let mut out = Vec::new();
            for (i, r) in s.get_ref().iter().enumerate() {
                if !rule_names().contains(&r.get_ref().as_str()) {
                    return cx.err(
                        r.span(),
                        &format!("selection[{i}]"),
                        format!(
                            "unknown selection rule {:?}; valid rules: {}",
                            r.get_ref(),
                            rule_names().join(", ")
                        ),
                    );
                }
                out.push(r.get_ref().clone());
            }
            out
        }
    })
}

/// A spec's `[[overrides]]`: which dataset and method each applies to, and its settings.
type Overrides<'r> = Vec<(Option<SpecDataset>, Option<MethodKind>, &'r RawHyper)>;

/// `[train]` (checked) and `[[overrides]]`.
fn read_overrides<'r>(cx: &Ctx, raw: &'r RawSpec) -> Result<Overrides<'r>, SpecError> {
    if let Some(train) = &raw.train {
        let t = train.get_ref();
        if let Some(d) = &t.dataset {
            return cx.err(
                d.span(),
                "train.dataset",
                "`dataset` only selects entries in [[overrides]]; [train] applies to every job",
            );
        }
        if let Some(m) = &t.method {
            return cx.err(
                m.span(),
                "train.method",
                "`method` only selects entries in [[overrides]]; [train] applies to every job",
            );
        }
        check_hyper(&cx, t, "train")?;
    }
    let mut overrides: Overrides = Vec::new();
    for (i, o) in raw.overrides.iter().enumerate() {
        let o = o.get_ref();
        let key = format!("overrides[{i}]");
        let d = match &o.dataset {
            Some(d) => Some(
                SpecDataset::parse(d.get_ref())
                    .or_else(|e| cx.err(d.span(), &format!("{key}.dataset"), e))?,
            ),
            None => None,
        };
        let m = match &o.method {
            Some(m) => Some(
                parse_method(m.get_ref())
                    .or_else(|e| cx.err(m.span(), &format!("{key}.method"), e))?,
            ),
            None => None,
        };
        check_hyper(&cx, o, &key)?;
        overrides.push((d, m, o));
    }
    Ok(overrides)
}

/// A spec's `[grid]`: per key, each value's settings and its variant label (`key=value`).
type Grid = Vec<(String, Vec<RawHyper>, Vec<String>)>;

/// `[grid]`: sweepable keys, each value checked as a `[train]` value would be.
fn read_grid(cx: &Ctx, src: &Source, raw: &RawSpec) -> Result<Grid, SpecError> {
    let mut grid: Grid = Vec::new();
    if let Some(g) = &raw.grid {
        for (k, values) in g {
            let key = format!("grid.{}", k.get_ref());
            if !GRID_KEYS.contains(&k.get_ref().as_str()) {
                return cx.err(
                    k.span(),
                    &key,
                    format!(
                        "cannot sweep {:?}; grid keys: {}",
                        k.get_ref(),
                        GRID_KEYS.join(", ")
                    ),
                );
            }
            if values.get_ref().is_empty() {
                return cx.err(values.span(), &key, "needs at least one value");
            }
            let mut hs = Vec::new();
            let mut labels = Vec::new();
            for v in values.get_ref() {
                let mut table = toml::Table::new();
                table.insert(k.get_ref().clone(), v.clone());
                let h: RawHyper = toml::to_string(&table)
                    .map_err(|e| e.to_string())
                    .and_then(|t| {
                        toml::from_str(&t)
                            .map_err(|e: toml::de::Error| e.message().trim().to_string())
                    })
                    .or_else(|e| cx.err(values.span(), &key, format!("value {v}: {e}")))?;
                check_hyper(&cx, &h, &key).map_err(|mut e| {
                    let at = src.err(values.span(), &key, "");
                    (e.line, e.column, e.key) = (at.line, at.column, key.clone());
                    e.message = format!("value {v}: {}", e.message);
                    e
                })?;
                labels.push(format!("{}={v}", k.get_ref()));
                hs.push(h);
            }
            grid.push((k.get_ref().clone(), hs, labels));
        }
    }

    Ok(grid)
}

/// The settings of `method`'s jobs on `dataset`: `[train]`, then every matching override.
fn resolve(
    raw: &RawSpec,
    overrides: &Overrides,
    dataset: SpecDataset,
    method: Option<MethodKind>,
) -> Hyper {
    let mut h = Hyper::default();
    if let Some(t) = &raw.train {
        h.apply(t.get_ref());
    }
    for (d, m, o) in overrides {
        let d_ok = d.is_none_or(|d| d == dataset);
        let m_ok = match (m, method) {
            (None, _) => true,
            (Some(m), Some(method)) => *m == method,
            (Some(_), None) => false,
        };
        if d_ok && m_ok {
            h.apply(o);
        }
    }
    h
}

/// Every combination of `grid` values applied to `hyper`, with its variant labels (ws_noise
/// only multiplies methods that use DA-WS proportions, the image keys only image jobs; an image
/// job's `labels_per_class` is its problem, not a variant).
fn grid_combos(
    grid: &Grid,
    dataset: SpecDataset,
    method: MethodKind,
    hyper: Hyper,
) -> Vec<(Hyper, Vec<String>)> {
    let images = dataset.task() == Task::Images;
    let mut combos: Vec<(Hyper, Vec<String>)> = vec![(hyper, Vec::new())];
    // `ws` first, so that `ws_noise` knows which combinations have DA-WS (labels keep the
    // file's order otherwise).
    let mut keys: Vec<&(String, Vec<RawHyper>, Vec<String>)> = grid.iter().collect();
    keys.sort_by_key(|(k, _, _)| k != "ws");
    for (k, hs, labels) in keys {
        if (k == "ws" && !takes_ws(method)) || (IMAGE_GRID_KEYS.contains(&k.as_str()) && !images) {
            continue;
        }
        let mut next = Vec::new();
        for (h0, l0) in &combos {
            // ws_noise only multiplies combinations that use DA-WS proportions.
            let with_ws = h0.ws == Some(true) && takes_ws(method);
            if k == "ws_noise" && !method.info().uses_proportions && !with_ws {
                next.push((h0.clone(), l0.clone()));
                continue;
            }
            for (h, l) in hs.iter().zip(labels) {
                let mut h1 = h0.clone();
                h1.apply(h);
                let mut l1 = l0.clone();
                if k != "labels_per_class" {
                    l1.push(l.clone());
                }
                next.push((h1, l1));
            }
        }
        combos = next;
    }
    combos
}

/// What one job of a problem, method, grid combination and seed is.
struct JobKey<'a> {
    dataset: SpecDataset,
    problem: &'a str,
    sources: &'a [u32],
    target: u32,
    method: MethodKind,
    labels: &'a [String],
    seed: u64,
}

/// The job `k` with settings `h`.
fn make_job(k: &JobKey, h: &Hyper) -> Job {
    let JobKey {
        dataset,
        problem,
        target,
        method,
        labels,
        seed,
        ..
    } = *k;
    let sources = k.sources.to_vec();
    // `ws` from [train] or an override (not the grid) still names the job: `…-wstrue-s0`.
    let ws = h.ws == Some(true) && takes_ws(method);
    let mut labels = labels.to_vec();
    if ws && !labels.iter().any(|l| l.starts_with("ws=")) {
        labels.push("ws=true".into());
    }
    let labels = labels.as_slice();
    let variant = labels.join(",");
    let ws_noise = if method.info().uses_proportions || ws {
        h.ws_noise.filter(|n| *n > 0.0)
    } else {
        None
    };
    let images = match dataset {
        SpecDataset::Images(_) => Some(image_options(h)),
        SpecDataset::Series(_) => None,
    };
    let (id, (steps, batch, lr, eval_every)) = match &images {
        Some(im) => (
            crate::config::image_run_id(
                dataset.as_str(),
                method,
                im.labels_per_class,
                labels,
                seed,
            ),
            {
                use defaults::images as d;
                (d::STEPS, d::BATCH, d::LR, d::EVAL_EVERY)
            },
        ),
        None => (
            crate::config::run_id(dataset.as_str(), method, &sources, target, labels, seed),
            (
                defaults::STEPS,
                defaults::BATCH,
                defaults::LR,
                defaults::EVAL_EVERY,
            ),
        ),
    };
    Job {
        id,
        dataset: dataset.as_str().to_string(),
        problem: problem.to_string(),
        sources: sources.clone(),
        target,
        method,
        variant,
        seed,
        steps: h.steps.unwrap_or(steps),
        batch_size: h.batch_size.unwrap_or(batch),
        batch_division: h.batch_division.filter(|_| images.is_none()),
        lr: h.lr.unwrap_or(lr),
        split_seed: h.split_seed.unwrap_or(0),
        eval_every: h.eval_every.unwrap_or(eval_every),
        checkpoint_every: h.checkpoint_every,
        few_shot: h.few_shot.filter(|_| images.is_none()).unwrap_or(0),
        ws_noise,
        ws,
        // A method defined on its own feature extractor (rdann: the GRU) keeps it.
        backbone: h
            .backbone
            .and_then(|b| b.series())
            .filter(|_| images.is_none() && method.info().backbone.is_none()),
        data_dir: h.data_dir.clone(),
        kernels: h.kernels,
        images,
    }
}

/// An image job's `[images]` settings: FixMatch's recipe (`codats ssl train`'s defaults) with
/// the spec's values over it.
fn image_options(h: &Hyper) -> ImageOptions {
    let d = ImageOptions::fixmatch(h.labels_per_class.unwrap_or(0));
    ImageOptions {
        labels_per_class: d.labels_per_class,
        unlabelled_limit: h.unlabelled_limit,
        test_fraction: h.test_fraction.unwrap_or(d.test_fraction),
        valid_size: h.valid_size.unwrap_or(d.valid_size),
        uratio: h.uratio.unwrap_or(d.uratio),
        backbone: h.backbone.and_then(|b| b.image()).unwrap_or(d.backbone),
        gct: h.gct.unwrap_or(d.gct),
        momentum: h.momentum.unwrap_or(d.momentum),
        bn_momentum: h.bn_momentum.unwrap_or(d.bn_momentum),
        resize: h.resize,
        color: h.color.unwrap_or(d.color),
        nesterov: h.nesterov.unwrap_or(d.nesterov),
        weight_decay: h.weight_decay.unwrap_or(d.weight_decay),
        cosine: h.cosine.unwrap_or(d.cosine),
        teacher: None,
    }
}

fn check_hyper(cx: &Ctx, h: &RawHyper, key: &str) -> Result<(), SpecError> {
    let pos = |v: &Option<toml::Spanned<usize>>, name: &str| -> Result<(), SpecError> {
        match v {
            Some(s) if *s.get_ref() == 0 => {
                cx.err(s.span(), &format!("{key}.{name}"), "must be at least 1")
            }
            _ => Ok(()),
        }
    };
    pos(&h.steps, "steps")?;
    pos(&h.batch_size, "batch_size")?;
    pos(&h.eval_every, "eval_every")?;
    pos(&h.checkpoint_every, "checkpoint_every")?;
    pos(&h.few_shot, "few_shot")?;
    pos(&h.labels_per_class, "labels_per_class")?;
    pos(&h.uratio, "uratio")?;
    pos(&h.unlabelled_limit, "unlabelled_limit")?;
    let within = |v: &Option<toml::Spanned<f64>>,
                  name: &str,
                  ok: fn(f64) -> bool,
                  what: &str|
     -> Result<(), SpecError> {
        match v {
            Some(x) if !(x.get_ref().is_finite() && ok(*x.get_ref())) => {
                cx.err(x.span(), &format!("{key}.{name}"), what)
            }
            _ => Ok(()),
        }
    };
    within(
        &h.momentum,
        "momentum",
        |m| (0.0..1.0).contains(&m),
        "must lie in [0, 1)",
    )?;
    within(
        &h.bn_momentum,
        "bn_momentum",
        |m| m > 0.0 && m <= 1.0,
        "must lie in (0, 1]",
    )?;
    within(
        &h.weight_decay,
        "weight_decay",
        |w| w >= 0.0,
        "must be a number ≥ 0",
    )?;
    within(
        &h.test_fraction,
        "test_fraction",
        |f| f > 0.0 && f < 1.0,
        "must lie strictly between 0 and 1",
    )?;
    if let Some(lr) = &h.lr {
        if !(lr.get_ref().is_finite() && *lr.get_ref() > 0.0) {
            return cx.err(lr.span(), &format!("{key}.lr"), "must be a positive number");
        }
    }
    if let Some(n) = &h.ws_noise {
        if !(n.get_ref().is_finite() && *n.get_ref() >= 0.0) {
            return cx.err(
                n.span(),
                &format!("{key}.ws_noise"),
                "must be a non-negative number",
            );
        }
    }
    Ok(())
}

fn check_ids(
    cx: &Ctx,
    span: std::ops::Range<usize>,
    key: &str,
    dataset: DatasetName,
    ids: &[u32],
    sources: &[u32],
    target: u32,
) -> Result<(), SpecError> {
    for &d in sources.iter().chain(std::iter::once(&target)) {
        if !ids.contains(&d) {
            return cx.err(
                span,
                key,
                format!(
                    "domain {d} is not in {} (its domains are {})",
                    dataset.as_str(),
                    describe_ids(ids)
                ),
            );
        }
    }
    if sources.contains(&target) {
        return cx.err(
            span,
            key,
            format!("target {target} is also one of its sources"),
        );
    }
    let uniq: BTreeSet<u32> = sources.iter().copied().collect();
    if uniq.len() != sources.len() {
        return cx.err(span, key, "a source is listed twice");
    }
    if sources.is_empty() {
        return cx.err(span, key, "needs at least one source");
    }
    Ok(())
}

fn problems_of(
    cx: &Ctx,
    key: &str,
    span: std::ops::Range<usize>,
    p: &RawProblems,
    dataset: DatasetName,
    ids: &[u32],
) -> Result<Vec<(Vec<u32>, u32)>, SpecError> {
    let forms = [
        p.pairs.is_some(),
        p.sources.is_some() || p.target.is_some(),
        p.targets.is_some() || p.n_sources.is_some() || p.subsets.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() != 1 {
        return cx.err(
            span,
            key,
            "give exactly one of: `pairs = [[source, target], ...]`; `sources` + `target`; `targets` + `n_sources` + `subsets`",
        );
    }
    if (p.pool.is_some() || p.seed.is_some()) && p.targets.is_none() {
        return cx.err(span, key, "`pool` and `seed` only apply to generated problems (`targets` + `n_sources` + `subsets`)");
    }
    let mut out = Vec::new();
    if let Some(pairs) = &p.pairs {
        if pairs.get_ref().is_empty() {
            return cx.err(
                pairs.span(),
                &format!("{key}.pairs"),
                "needs at least one pair",
            );
        }
        for (i, pair) in pairs.get_ref().iter().enumerate() {
            let k = format!("{key}.pairs[{i}]");
            let v = pair.get_ref();
            if v.len() != 2 {
                return cx.err(
                    pair.span(),
                    &k,
                    format!("a pair is [source, target], got {} numbers", v.len()),
                );
            }
            check_ids(cx, pair.span(), &k, dataset, ids, &v[..1], v[1])?;
            out.push((vec![v[0]], v[1]));
        }
    } else if p.sources.is_some() || p.target.is_some() {
        let (Some(s), Some(t)) = (&p.sources, &p.target) else {
            return cx.err(
                span,
                key,
                "an explicit problem needs both `sources` and `target`",
            );
        };
        check_ids(
            cx,
            s.span(),
            &format!("{key}.sources"),
            dataset,
            ids,
            s.get_ref(),
            *t.get_ref(),
        )?;
        out.push((s.get_ref().clone(), *t.get_ref()));
    } else {
        let (Some(targets), Some(ns), Some(k)) = (&p.targets, &p.n_sources, &p.subsets) else {
            return cx.err(
                span,
                key,
                "generated problems need `targets`, `n_sources` and `subsets`",
            );
        };
        if *k.get_ref() == 0 {
            return cx.err(k.span(), &format!("{key}.subsets"), "must be at least 1");
        }
        if targets.get_ref().is_empty() {
            return cx.err(
                targets.span(),
                &format!("{key}.targets"),
                "needs at least one target",
            );
        }
        if ns.get_ref().is_empty() {
            return cx.err(
                ns.span(),
                &format!("{key}.n_sources"),
                "needs at least one number",
            );
        }
        if let Some(pool) = &p.pool {
            for &d in pool.get_ref() {
                if !ids.contains(&d) {
                    return cx.err(
                        pool.span(),
                        &format!("{key}.pool"),
                        format!(
                            "domain {d} is not in {} (its domains are {})",
                            dataset.as_str(),
                            describe_ids(ids)
                        ),
                    );
                }
            }
        }
        let seed = p.seed.unwrap_or(0);
        for (ti, t) in targets.get_ref().iter().enumerate() {
            let tk = format!("{key}.targets[{ti}]");
            let target = *t.get_ref();
            if !ids.contains(&target) {
                return cx.err(
                    t.span(),
                    &tk,
                    format!(
                        "domain {target} is not in {} (its domains are {})",
                        dataset.as_str(),
                        describe_ids(ids)
                    ),
                );
            }
            let pool: Vec<u32> = p
                .pool
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_else(|| ids.to_vec())
                .into_iter()
                .filter(|d| *d != target)
                .collect();
            for (ni, n) in ns.get_ref().iter().enumerate() {
                let n_val = *n.get_ref();
                if n_val == 0 || n_val > pool.len() {
                    return cx.err(
                        n.span(),
                        &format!("{key}.n_sources[{ni}]"),
                        format!("cannot choose {n_val} sources for target {target}: {} candidate domains", pool.len()),
                    );
                }
                for s in random_subsets(&pool, n_val, *k.get_ref(), seed, target) {
                    out.push((s, target));
                }
            }
        }
    }
    Ok(out)
}

/// Counts of jobs per dataset and method (for `codats sweep plan`).
pub fn summarize(plan: &Plan) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for j in &plan.jobs {
        *m.entry((j.dataset.clone(), j.method_label())).or_insert(0) += 1;
    }
    m
}

/// Whether `--ws` applies to `method` ([`crate::config::MethodConfig::takes_ws`]).
fn takes_ws(method: MethodKind) -> bool {
    crate::config::MethodConfig::takes_ws(method)
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
