//! `codats ssl train`: image classification with few labels on the trainer core (a labelled pool
//! of `--labels-per-class` images per class, the rest unlabelled, a held-out test set).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::problem::load_problem;
use super::train::{finish, resume, TrainArgs};
use super::{at_least_one, available_threads, parse_param, set_threads};
use crate::config::defaults::images as defaults;
use crate::config::images::{ColorMode, ImageBackbone, ImageOptions, TeacherConfig};
use crate::config::{code_version, image_run_id, CheckedConfig, MethodConfig, TrainConfig};
use crate::data::batch::BatchDivision;
use crate::data::images::catalog::ImageDataset;
use crate::methods::{MethodKind, Task};
use crate::nn::Kernels;
use crate::train::run_lock::RunLock;
use crate::train::{RunOptions, Trainer};

/// `codats ssl …`.
#[derive(Debug, Subcommand)]
pub enum SslCommand {
    /// Train an image method (supervised, fixmatch, …) on a labelled and an unlabelled pool.
    Train(SslTrainArgs),
    /// The clustering baseline: k-means on the raw pixels of a run's unlabelled pool, scored
    /// on the held-out test images (nearest centre) by Hungarian accuracy, NMI and ARI.
    Kmeans(SslKmeansArgs),
    /// Linear and kNN probes on a finished run's frozen backbone (the protocol of rotation
    /// pretext and other representation learners), or on its seeded random initialisation.
    Probe(super::probe::SslProbeArgs),
    /// Noisy Student (Xie et al. 2020): a teacher on the labelled images, then students of
    /// their predecessors' pseudo-labels, each an ordinary run directory under --out.
    NoisyStudent(super::noisy_student::NoisyStudentArgs),
}

/// `codats ssl kmeans`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example (the pool of `codats ssl train --dataset mnist --labels-per-class 1 --method uic`):\n  \
codats ssl kmeans --dataset mnist --labels-per-class 1 --k 10 --out kmeans.json"
)]
pub struct SslKmeansArgs {
    /// Image dataset: mnist, digits, cifar10, image_folder.
    #[arg(long, value_parser = image_dataset)]
    pub dataset: ImageDataset,
    /// Labelled images per class left out of the pool, as the `ssl train` run compared with (0:
    /// none, the pool of a `--labels-per-class 0` run).
    #[arg(long, default_value_t = 1)]
    pub labels_per_class: usize,
    /// Clusters.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Seed of the pools (as `ssl train --seed`) and of the k-means++ draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the test split and the validation hold-out.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Fraction of each class held out as test when the dataset has no published split.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Training images held out for validation (in neither pool).
    #[arg(long, default_value_t = 500)]
    pub valid_size: usize,
    /// k-means++ restarts; the lowest inertia is kept (scikit-learn's n_init).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub n_init: usize,
    /// Most Lloyd iterations per restart.
    #[arg(long, default_value_t = 300)]
    pub max_iter: usize,
    /// The dataset's own folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the scores as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn image_dataset(s: &str) -> std::result::Result<ImageDataset, String> {
    ImageDataset::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not an image dataset (image datasets: {})",
            ImageDataset::ALL.map(|d| d.as_str()).join(", ")
        )
    })
}

fn image_method(s: &str) -> std::result::Result<MethodKind, String> {
    let names = || MethodKind::names_of(Task::Images);
    match MethodKind::parse(s) {
        Some(m) if m.info().task == Task::Images => Ok(m),
        Some(m) => Err(format!(
            "{m} is a time-series adaptation method (`codats train`); image methods: {}",
            names()
        )),
        None => Err(format!("unknown method {s:?}; image methods: {}", names())),
    }
}

/// `codats ssl train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  codats ssl train --dataset mnist --labels-per-class 10 --method fixmatch --steps 2000\n\n\
Data: --data-dir DIR (the dataset's own folder), else $CODATS_DATA_DIR/<dataset>/ (digits:\n\
$CODATS_DATA_DIR/sklearn_digits/). MNIST without its 60 000 training images: the 10 000 test\n\
images are split into a training pool and a held-out test (--test-fraction, --split-seed),\n\
saved in the run's pools.json with the labelled, unlabelled and validation images.\n\n\
Defaults are USB's FixMatch recipe: batch 64 labelled + 7x64 unlabelled, SGD Nesterov 0.9,\n\
lr 0.03 with cosine decay, weight decay 5e-4, EMA 0.999 weights evaluated."
)]
pub struct SslTrainArgs {
    /// Image dataset: mnist, digits, cifar10, image_folder (`codats datasets list`).
    #[arg(long, value_parser = image_dataset, required_unless_present = "resume")]
    pub dataset: Option<ImageDataset>,
    /// Labelled images per class (balanced, seeded by --seed; USB's num_labels / classes). 0:
    /// none, every training image in the unlabelled pool (uic and deepcluster only).
    #[arg(long, required_unless_present = "resume")]
    pub labels_per_class: Option<usize>,
    /// Use at most this many unlabelled images (default: all the rest).
    #[arg(long, value_parser = at_least_one)]
    pub unlabelled_limit: Option<usize>,
    /// Image method (`codats methods` lists them with their parameters).
    #[arg(long, value_parser = image_method, default_value = "fixmatch")]
    pub method: MethodKind,
    /// Network: small-cnn (CPU-sized, the PyTorch anchor's) or wrn-28-2 (the literature's).
    #[arg(long, value_enum, default_value_t = ImageBackbone::SmallCnn)]
    pub backbone: ImageBackbone,
    /// A GCT gate (Yang et al. 2020) in front of every convolution.
    #[arg(long)]
    pub gct: bool,
    /// Training steps (FixMatch's paper: 2^20; a CPU run on MNIST: a few thousand).
    #[arg(long, default_value_t = defaults::STEPS)]
    pub steps: usize,
    /// Labelled images per step (B).
    #[arg(long, default_value_t = defaults::BATCH)]
    pub batch_size: usize,
    /// Unlabelled images per labelled one in a step (μ, USB's uratio).
    #[arg(long, default_value_t = 7)]
    pub uratio: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = defaults::LR)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Plain momentum instead of Nesterov's.
    #[arg(long)]
    pub no_nesterov: bool,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Constant learning rate instead of FixMatch's cosine decay cos(7πk/16K).
    #[arg(long)]
    pub no_cosine: bool,
    /// Batch-norm running-statistics momentum (PyTorch terms; USB's 0.001 assumes ~1M steps:
    /// in a run of a few thousand, the running statistics, and so evaluation, lag the weights;
    /// see docs/SSL.md).
    #[arg(long, default_value_t = 0.001)]
    pub bn_momentum: f64,
    /// image_folder: resize every image to WIDTHxHEIGHT (bilinear; e.g. 32x32). Without it
    /// the images must all have one size.
    #[arg(long, value_name = "WIDTHxHEIGHT", value_parser = super::parse_size)]
    pub resize: Option<[u32; 2]>,
    /// image_folder: channels of the loaded images (gray: one luma plane; rgb: three).
    #[arg(long, value_enum, default_value_t = ColorMode::Gray)]
    pub color: ColorMode,
    /// Fraction of each class held out as test when the dataset has no published split.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Training images held out for the oracle `best_target` rule (at most a tenth).
    #[arg(long, default_value_t = 500)]
    pub valid_size: usize,
    /// Seed for initialisation, the labelled pool, batching and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the test split and the validation hold-out (fixed across methods and seeds).
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Evaluate every N steps.
    #[arg(long, default_value_t = defaults::EVAL_EVERY)]
    pub eval_every: usize,
    /// Write a resumable checkpoint every N steps (default: --eval-every).
    #[arg(long, value_parser = at_least_one)]
    pub checkpoint_every: Option<usize>,
    /// A hyper-parameter of the method, as NAME=VALUE (repeatable; e.g. `--param p_cutoff=0.9`).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, f64)>,
    /// noisy_student: the finished image run whose weights (those it evaluated) label the
    /// unlabelled pool. It must have the same labelled, validation and test images (the same
    /// --dataset, --seed, --split-seed, --labels-per-class, --valid-size, --test-fraction);
    /// its network may differ (a student the teacher's size or larger).
    #[arg(long, value_name = "RUN")]
    pub teacher: Option<PathBuf>,
    /// The teacher's weights: those its selection rule RULE kept (`last`: the label-free
    /// choice; `best_target` picked them on the held-out validation labels).
    #[arg(long, value_name = "RULE", default_value = "last")]
    pub teacher_weights: String,
    /// Run directory (default: runs/<dataset>-<method>-l<labels per class>-s<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the interrupted run in --out from its last checkpoint.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// The dataset's own folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Convolution implementation for the small CNN: fast (hand-written CPU kernels, the
    /// default; forward and every gradient match the plain path within 1e-4, and so do the
    /// weights after training steps) or candle (plain candle ops, the reference, ≈ 10× slower).
    /// --gct and wrn-28-2 run on the plain path (picked for them unless --kernels is given).
    #[arg(long, value_enum, default_value_t = Kernels::Fast)]
    pub kernels: Kernels,
    /// CPU threads (default: all cores).
    #[arg(long, value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// No progress bar or log lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop after N steps without a final checkpoint, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// The flags given on the command line (filled by [`super::parse`]).
    #[arg(skip)]
    pub given: Vec<String>,
}

/// Runs `codats ssl …`.
pub fn run(c: SslCommand) -> Result<()> {
    match c {
        SslCommand::Train(a) => train(a),
        SslCommand::Kmeans(a) => kmeans(a),
        SslCommand::Probe(a) => super::probe::run(a),
        SslCommand::NoisyStudent(a) => super::noisy_student::run(a),
    }
}

fn kmeans(a: SslKmeansArgs) -> Result<()> {
    use crate::eval::cluster::ClusterScores;
    use crate::eval::kmeans::{kmeans, KmeansConfig};
    let mut images = ImageOptions::fixmatch(a.labels_per_class);
    images.test_fraction = a.test_fraction;
    images.valid_size = a.valid_size;
    images.check().map_err(anyhow::Error::msg)?;
    let dir = a.dataset.dir(a.data_dir.as_deref());
    let data = crate::data::images::catalog::load(a.dataset, &dir, &images.folder_options())?;
    let problem = crate::problem::images::image_problem(&data, &images, a.seed, a.split_seed)?;
    let t = &problem.target;
    let d = problem.window();
    // Raw pixels in [0, 1], not the network's normalised input.
    let (pool, _) = t.gather(&t.split.train, d);
    let (test, test_y) = t.gather(&t.split.test, d);
    let pool_y: Vec<u32> = t.split.train.iter().map(|&w| t.y[w]).collect();
    let started = std::time::Instant::now();
    let fit = kmeans(
        &pool,
        d,
        KmeansConfig {
            k: a.k,
            max_iter: a.max_iter,
            n_init: a.n_init,
            seed: a.seed,
            empty: crate::eval::kmeans::EmptyClusters::Farthest,
        },
    )
    .map_err(|e| anyhow::anyhow!("--k {}: {e}", a.k))?;
    let seconds = started.elapsed().as_secs_f64();
    let nearest = |x: &[f32]| -> u32 {
        let mut best = (0u32, f32::INFINITY);
        for (j, c) in fit.centres.chunks(d).enumerate() {
            let v: f32 = x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
            if v < best.1 {
                best = (j as u32, v);
            }
        }
        best.0
    };
    let test_pred: Vec<u32> = test.chunks(d).map(nearest).collect();
    let on_pool = ClusterScores::new(&pool_y, &fit.labels, a.k);
    let on_test = ClusterScores::new(&test_y, &test_pred, a.k);
    println!(
        "{} k-means on raw pixels, K {}, seed {}: {} iterations, {:.1} s",
        a.dataset.as_str(),
        a.k,
        a.seed,
        fit.iterations,
        seconds
    );
    println!("  pool: {}", on_pool.summary());
    println!("  test: {}", on_test.summary());
    if let Some(out) = &a.out {
        let json = serde_json::json!({
            "dataset": a.dataset.as_str(),
            "method": "kmeans",
            "k": a.k,
            "seed": a.seed,
            "split_seed": a.split_seed,
            "labels_per_class": a.labels_per_class,
            "n_init": a.n_init,
            "iterations": fit.iterations,
            "inertia": fit.inertia,
            "seconds": seconds,
            "pool": on_pool,
            "test": on_test,
        });
        std::fs::write(out, serde_json::to_string_pretty(&json)? + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    }
    Ok(())
}

fn train(a: SslTrainArgs) -> Result<()> {
    if a.resume {
        // The run's config.toml decides everything: the same path as `codats train --resume`.
        return resume(TrainArgs::for_resume(
            a.out.clone(),
            a.data_dir.clone(),
            a.quiet,
            a.stop_after,
            a.given.clone(),
        ));
    }
    if a.teacher.is_none() && a.given.iter().any(|f| f == "--teacher-weights") {
        anyhow::bail!("--teacher-weights needs --teacher RUN");
    }
    let teacher = a
        .teacher
        .as_deref()
        .map(|run| teacher_config(run, &a.teacher_weights))
        .transpose()?;
    let cfg = train_config(&a, a.method, teacher)?;
    let out = a.out.clone().unwrap_or_else(|| {
        let labels = cfg.images.as_ref().map_or(0, |i| i.labels_per_class);
        PathBuf::from("runs").join(image_run_id(
            &cfg.dataset,
            cfg.method.name,
            labels,
            &[],
            cfg.seed,
        ))
    });
    let result = start_run(cfg, &out, a.quiet, a.stop_after)?;
    finish(result, &out)
}

/// The checked config of a fresh `codats ssl train` run of `method` with `teacher`.
pub(crate) fn train_config(
    a: &SslTrainArgs,
    method: MethodKind,
    teacher: Option<TeacherConfig>,
) -> Result<CheckedConfig> {
    let (Some(dataset), Some(labels_per_class)) = (a.dataset, a.labels_per_class) else {
        anyhow::bail!("--dataset and --labels-per-class are required unless --resume is given");
    };
    let threads = a.threads.unwrap_or_else(available_threads).max(1);
    // The fast kernels are the small CNN's without gates: --gct and wrn-28-2 (the student's
    // or the teacher's) pick the plain path unless --kernels was given (a given `--kernels
    // fast` is refused by the config check).
    let plain_only =
        a.gct || a.backbone != ImageBackbone::SmallCnn || teacher.as_ref().is_some_and(|t| t.gct);
    let kernels = if plain_only && !a.given.iter().any(|f| f == "--kernels") {
        Kernels::Candle
    } else {
        a.kernels
    };
    let images = ImageOptions {
        labels_per_class,
        unlabelled_limit: a.unlabelled_limit,
        test_fraction: a.test_fraction,
        valid_size: a.valid_size,
        uratio: a.uratio,
        backbone: a.backbone,
        gct: a.gct,
        momentum: a.momentum,
        nesterov: !a.no_nesterov,
        weight_decay: a.weight_decay,
        bn_momentum: a.bn_momentum,
        cosine: !a.no_cosine,
        resize: a.resize,
        color: a.color,
        teacher,
    };
    Ok(TrainConfig {
        dataset: dataset.as_str().to_string(),
        data_dir: a.data_dir.clone(),
        // The labelled pool is the one "source" (domain 1), the unlabelled pool the "target".
        sources: vec![1],
        target: 0,
        steps: a.steps,
        batch_size: a.batch_size,
        batch_division: BatchDivision::None,
        lr: a.lr,
        seed: a.seed,
        split_seed: a.split_seed,
        eval_every: a.eval_every,
        checkpoint_every: a.checkpoint_every.unwrap_or(a.eval_every),
        threads,
        kernels,
        gct: false,
        backbone: Default::default(),
        few_shot: 0,
        code_version: code_version(),
        conventions: crate::config::CONVENTIONS,
        method: MethodConfig {
            name: method,
            target_proportions: None,
            ws_noise: None,
            ws: false,
            params: a.params.iter().cloned().collect(),
        },
        data: Default::default(),
        images: Some(images),
    }
    .check()?)
}

/// Trains the fresh image run `cfg` in `out`: its result, or `None` when `stop_after`
/// stopped it.
pub(crate) fn start_run(
    cfg: CheckedConfig,
    out: &Path,
    quiet: bool,
    stop_after: Option<usize>,
) -> Result<Option<crate::train::result::RunResult>> {
    set_threads(cfg.threads, cfg.kernels);
    let problem = load_problem(&cfg, None, true, quiet, false)?;
    if let Some(t) = cfg.images.as_ref().and_then(|i| i.teacher.as_ref()) {
        check_teacher_pools(&t.run, &problem)?;
    }
    let _lock = RunLock::acquire(out)?;
    let mut trainer = Trainer::new(cfg, problem, out)?;
    if !quiet {
        let c = trainer.config();
        let im = c.images.as_ref().expect("image run");
        eprintln!(
            "training {} on {} ({}{}): {} labels per class, {} steps, batch {} + {}x{} unlabelled, {} threads{} -> {}",
            c.method.name,
            c.dataset,
            im.backbone.as_str(),
            if im.gct { " + GCT" } else { "" },
            im.labels_per_class,
            c.steps,
            c.batch_size,
            im.uratio,
            c.batch_size,
            c.threads,
            im.teacher
                .as_ref()
                .map(|t| format!(", teacher {} ({} weights)", t.run.display(), t.weights))
                .unwrap_or_default(),
            out.display()
        );
    }
    let result = trainer.run(RunOptions {
        progress: !quiet,
        log_lines: !quiet,
        stop_after,
    })?;
    if !quiet {
        eprintln!("{}", trainer.timing().summary());
    }
    Ok(result)
}

/// The `[images.teacher]` of a run taught by the finished image run `run`, with the weights
/// its selection rule `rule` kept: the ones it evaluated (EMA or raw), its network and the
/// weights file's sha256.
pub(crate) fn teacher_config(run: &Path, rule: &str) -> Result<TeacherConfig> {
    crate::train::selection::check_name("--teacher-weights", rule).map_err(anyhow::Error::msg)?;
    let cfg = crate::train::checkpoint::read_verified_config(run)
        .with_context(|| format!("--teacher {}", run.display()))?;
    let Some(images) = cfg.images.as_ref() else {
        anyhow::bail!(
            "--teacher {}: a time-series run ({} on {}); a teacher is an image run",
            run.display(),
            cfg.method.name,
            cfg.dataset
        );
    };
    let result_path = run.join("result.json");
    let text = std::fs::read_to_string(&result_path).map_err(|_| {
        anyhow::anyhow!(
            "--teacher {}: the run is not finished (no result.json); finish it with \
             `codats ssl train --resume --out {}`",
            run.display(),
            run.display()
        )
    })?;
    let result: crate::train::result::RunResult = serde_json::from_str(&text)
        .with_context(|| format!("reading {}", result_path.display()))?;
    let weights = result.images.as_ref().map_or("raw", |i| i.weights.as_str());
    let t = TeacherConfig {
        run: run.to_path_buf(),
        weights: rule.to_string(),
        prefix: if weights == "ema" { "ema." } else { "model." }.to_string(),
        backbone: images.backbone,
        gct: images.gct,
        sha256: String::new(),
    };
    let path = t.weights_path();
    let bytes = std::fs::read(&path).map_err(|_| {
        anyhow::anyhow!(
            "--teacher {}: it has no {} weights ({} is missing)",
            run.display(),
            rule,
            path.display()
        )
    })?;
    Ok(TeacherConfig {
        sha256: crate::train::checkpoint::sha256_hex(&bytes),
        ..t
    })
}

/// Refuses a teacher whose labelled, validation or test images are not this run's: it would
/// have trained on images this run holds out, or on other labels.
fn check_teacher_pools(run: &Path, problem: &crate::problem::Problem) -> Result<()> {
    use crate::problem::images::ImagePools;
    let path = run.join("pools.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("--teacher {}: reading {}", run.display(), path.display()))?;
    let theirs: ImagePools =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let ours = &problem.image.as_ref().expect("an image problem").pools;
    let differs = [
        ("dataset", theirs.dataset != ours.dataset),
        ("labelled", theirs.labelled != ours.labelled),
        ("validation", theirs.valid != ours.valid),
        ("test", theirs.test != ours.test),
    ];
    if let Some((what, _)) = differs.iter().find(|(_, d)| *d) {
        anyhow::bail!(
            "--teacher {}: its {what} images are not this run's (give the teacher's --dataset, \
             --seed, --split-seed, --labels-per-class, --valid-size and --test-fraction)",
            run.display()
        );
    }
    Ok(())
}
