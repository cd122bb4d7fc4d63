//! `codats ssl probe RUN`: the linear and kNN probes of [`crate::eval::probe`] on a finished
//! image run's frozen backbone — the evaluation protocol of rotation pretext and the other
//! representation learners — or, with `--random-init`, on the same network at the run's seeded
//! initialisation (the baseline a pretext task must beat).
//!
//! The probes train on the backbone's eval-mode features of every training image with its true
//! label (the labelled and the unlabelled pool: the protocol's "train set") and are scored on the
//! run's held-out test images.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::{Args, ValueEnum};

use super::{available_threads, set_threads};
use crate::eval::probe::{knn_predict, KnnConfig, LinearProbe, LinearProbeConfig};
use crate::methods::Method;
use crate::metrics::accuracy;
use crate::problem::{PreparedDomain, Problem};
use crate::train::{self, checkpoint::RunDir, eval::predict_features, selection};

/// Which probes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeKind {
    /// Multinomial logistic regression on standardised features.
    Linear,
    /// Cosine-similarity kNN vote (k 20, T 0.07).
    Knn,
    /// Both.
    Both,
}

/// `codats ssl probe`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example (rotation pretext against its randomly initialised network):\n  \
codats ssl train --dataset digits --labels-per-class 10 --method rotation --steps 300 --out runs/rot\n  \
codats ssl probe runs/rot\n  \
codats ssl probe runs/rot --random-init\n\
Writes RUN/probe.json (RUN/probe-random.json with --random-init) unless --out is given."
)]
pub struct SslProbeArgs {
    /// Run directory of a finished `codats ssl train` run.
    pub run_dir: PathBuf,
    /// Which probes to run.
    #[arg(long, value_enum, default_value_t = ProbeKind::Both)]
    pub probe: ProbeKind,
    /// The weights to probe: `last` (the final ones) or a selection rule's (best_source,
    /// source_risk, best_target) where the run kept them.
    #[arg(long, default_value = "last")]
    pub weights: String,
    /// Probe the run's network at its seeded initialisation instead of its trained weights.
    #[arg(long)]
    pub random_init: bool,
    /// Seed of the linear probe's mini-batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Passes of the linear probe over the training features.
    #[arg(long, default_value_t = 100, value_parser = super::at_least_one)]
    pub epochs: usize,
    /// Neighbours that vote in the kNN probe.
    #[arg(long, default_value_t = 20, value_parser = super::at_least_one)]
    pub k: usize,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = super::at_least_one)]
    pub threads: Option<usize>,
    /// Folder holding the dataset's files (default: as recorded in the run).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where to write the probes' JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Eval-mode features of the windows of `parts`, row-major, their labels and the width.
fn features(
    method: &dyn Method,
    problem: &Problem,
    parts: &[(&PreparedDomain, &[usize])],
) -> Result<(Vec<f32>, Vec<u32>, usize)> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (d, idx) in parts {
        let (x, y) = d.gather(idx, problem.window());
        xs.extend(x);
        ys.extend(y);
    }
    let x: Tensor = problem.input(xs, ys.len())?;
    let (out, width) = predict_features(method, &x)?
        .with_context(|| format!("method {} exposes no features to probe", method.kind()))?;
    Ok((out, ys, width))
}

/// Runs `codats ssl probe`.
pub fn run(a: SslProbeArgs) -> Result<()> {
    let cfg = train::checkpoint::read_verified_config(&a.run_dir)?;
    if cfg.images.is_none() {
        bail!(
            "{}: probes read an image backbone; this is a time-series run ({} on {})",
            a.run_dir.display(),
            cfg.method.name,
            cfg.dataset
        );
    }
    let dir = RunDir::open(&a.run_dir)?;
    selection::check_name("--weights", &a.weights).map_err(anyhow::Error::msg)?;
    let weights = dir.weights_path(&a.weights);
    if !a.random_init && !weights.exists() {
        bail!(
            "{} has no {}: the probes need the run's trained backbone (finish the run with \
             `codats ssl train --resume --out {}`, or probe --random-init)",
            a.run_dir.display(),
            display_rel(&weights, &a.run_dir),
            a.run_dir.display()
        );
    }
    let _lock = train::run_lock::RunLock::acquire(&a.run_dir)?;
    set_threads(a.threads.unwrap_or_else(available_threads), cfg.kernels);
    let problem = super::problem::load_problem(&cfg, a.data_dir.as_deref(), true, true, false)?;
    dir.check_splits(&problem)?;
    let (mut varmap, method) = train::build_method(&cfg, &problem)?;
    if !a.random_init {
        dir.load_weights(&mut varmap, &a.weights)?;
    }
    let labelled = &problem.sources[0];
    let pool = &problem.target;
    let started = std::time::Instant::now();
    let (train_x, train_y, d) = features(
        method.as_ref(),
        &problem,
        &[(labelled, &labelled.split.train), (pool, &pool.split.train)],
    )?;
    let (test_x, test_y, _) = features(method.as_ref(), &problem, &[(pool, &pool.split.test)])?;
    let classes = problem.n_classes();
    let what = if a.random_init {
        "random initialisation".to_string()
    } else {
        format!("{} weights", a.weights)
    };
    println!(
        "{} {} on {} ({what}): {}-dim features of {} training and {} test images",
        cfg.method.name,
        a.run_dir.display(),
        cfg.dataset,
        d,
        train_y.len(),
        test_y.len()
    );
    let mut json = serde_json::json!({
        "run": a.run_dir.display().to_string(),
        "method": cfg.method.name.as_str(),
        "dataset": cfg.dataset,
        "weights": if a.random_init { "random_init" } else { a.weights.as_str() },
        "feature_dim": d,
        "train_images": train_y.len(),
        "test_images": test_y.len(),
    });
    if a.probe != ProbeKind::Knn {
        let pc = LinearProbeConfig {
            epochs: a.epochs,
            seed: a.seed,
            ..Default::default()
        };
        let probe =
            LinearProbe::fit(&train_x, d, &train_y, classes, pc).map_err(anyhow::Error::msg)?;
        let acc = accuracy(
            &test_y,
            &probe.predict(&test_x).map_err(anyhow::Error::msg)?,
        );
        println!(
            "  linear probe: {:.2}% test accuracy ({} epochs, lr {}, L2 {}, seed {})",
            100.0 * acc,
            pc.epochs,
            pc.lr,
            pc.l2,
            pc.seed
        );
        json["linear"] = serde_json::json!({
            "accuracy": acc, "epochs": pc.epochs, "batch": pc.batch, "lr": pc.lr,
            "l2": pc.l2, "seed": pc.seed,
        });
    }
    if a.probe != ProbeKind::Linear {
        let kc = KnnConfig {
            k: a.k,
            ..Default::default()
        };
        let pred =
            knn_predict(&train_x, &train_y, &test_x, d, classes, kc).map_err(anyhow::Error::msg)?;
        let acc = accuracy(&test_y, &pred);
        println!(
            "  kNN probe: {:.2}% test accuracy (k {}, T {})",
            100.0 * acc,
            kc.k,
            kc.temperature
        );
        json["knn"] =
            serde_json::json!({ "accuracy": acc, "k": kc.k, "temperature": kc.temperature });
    }
    json["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    let out = a.out.clone().unwrap_or_else(|| {
        a.run_dir.join(if a.random_init {
            "probe-random.json"
        } else {
            "probe.json"
        })
    });
    let text = serde_json::to_string_pretty(&json)? + "\n";
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// `path` relative to `root` when inside it.
fn display_rel(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
