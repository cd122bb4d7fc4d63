//! Command-line interface: clap definitions and wiring only.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{code_version, TrainConfig};
use crate::data::batch::BatchDivision;
use crate::data::registry::{self, DatasetName};
use crate::methods::MethodKind;
use crate::problem::{describe_ids, Problem};
use crate::train::{self, RunOptions, Trainer};

/// codats: domain adaptation for time-series sensor data (CoDATS and baselines) on CPU.
#[derive(Debug, Parser)]
#[command(name = "codats", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model on source domains and evaluate it on a target domain.
    Train(TrainArgs),
    /// Recompute result.json of a run directory from its saved checkpoints.
    Eval(EvalArgs),
    /// List, describe and download datasets.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Run experiment sweeps (experiments/*.toml) locally or on Slurm, and check on them.
    #[command(subcommand)]
    Sweep(crate::cli_sweep::SweepCommand),
    /// Tables, paired t-tests and figures of a sweep directory.
    Report(crate::cli_sweep::ReportArgs),
}

/// `codats train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  codats train --dataset ucihar --sources 1,3,5 --target 7 --method codats --steps 3000\n\n\
Data: --data-dir DIR, else $CODATS_DATA_DIR/<dataset>/, else the user cache; a missing archive is\n\
downloaded (verified) unless --offline."
)]
pub struct TrainArgs {
    /// Dataset name.
    #[arg(long, value_enum)]
    pub dataset: DatasetName,
    /// Source domain ids, comma separated (UCI HAR: subjects 1..30). Not used by `upper`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub sources: Vec<u32>,
    /// Target domain id.
    #[arg(long)]
    pub target: u32,
    /// Method: none (source only), upper (train on target), codats, codats_ws.
    #[arg(long, value_enum, default_value_t = MethodKind::Codats)]
    pub method: MethodKind,
    /// Training steps (the paper used 30000).
    #[arg(long, default_value_t = 30_000)]
    pub steps: usize,
    /// Total batch size per step, divided over domains by --batch-division.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// all: batch / (sources + 1) per domain; sources: batch / sources per source, whole batch of
    /// target; none: whole batch each. Default: `sources` for codats_ws, else `all`.
    #[arg(long, value_enum)]
    pub batch_division: Option<BatchDivision>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Seed for initialisation, batching and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the per-domain train/valid/test splits.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Evaluate on source and target validation every N steps.
    #[arg(long, default_value_t = 500)]
    pub eval_every: usize,
    /// Write a resumable checkpoint every N steps (default: --eval-every).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// DA-WS: known target label proportions, one per class, summing to 1 (default: the
    /// target's train-split proportions, simulating reported proportions).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub target_proportions: Option<Vec<f64>>,
    /// DA-WS: perturb the target proportions by this total amount (L1 distance, e.g. 0.1) and
    /// renormalise, to measure robustness to wrong proportions (deterministic from --seed).
    #[arg(long)]
    pub ws_noise: Option<f64>,
    /// Run directory (default: runs/<dataset>-<method>-<sources>-to-<target>-s<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the interrupted run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Folder holding this dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download; fail if the data is missing.
    #[arg(long)]
    pub offline: bool,
    /// CPU threads for tensor kernels (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar or log lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop after N steps without a final checkpoint, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// `codats eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory made by `codats train`.
    pub run_dir: PathBuf,
    /// Folder holding the dataset's files (default: as recorded in the run, else the usual lookup).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `codats datasets ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// List the datasets codats knows.
    List,
    /// Domains, windows per domain and class balance of a dataset.
    Info {
        /// Dataset name.
        #[arg(value_enum)]
        name: DatasetName,
        /// Folder holding this dataset's files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Download a dataset's published archive and verify it.
    Download {
        /// Dataset name.
        #[arg(value_enum)]
        name: DatasetName,
        /// Folder to put it in (default: $CODATS_DATA_DIR/<name>, else the user cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train_cmd(a),
        Command::Eval(a) => eval_cmd(a),
        Command::Datasets(c) => datasets_cmd(c),
        Command::Sweep(c) => crate::cli_sweep::sweep_cmd(c),
        Command::Report(a) => crate::cli_sweep::report_cmd(a),
    }
}

fn set_threads(threads: usize) {
    // candle's CPU kernels size their thread pool from RAYON_NUM_THREADS on first use.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
}

fn available_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    let progress = !a.quiet;
    if a.resume {
        let out = a.out.context("--resume needs --out RUN_DIR")?;
        let cfg = train::checkpoint::read_config(&out)?;
        set_threads(cfg.threads);
        let dataset = registry::load(
            DatasetName::parse(&cfg.dataset).map_err(anyhow::Error::msg)?,
            cfg.data_dir.as_deref(),
            a.offline,
            progress,
        )?;
        let problem = Problem::new(&dataset, &cfg.sources, cfg.target, cfg.split_seed)?;
        let mut trainer = Trainer::resume(problem, &out)?;
        if progress {
            eprintln!(
                "resuming {} at step {}/{}",
                out.display(),
                trainer.step(),
                cfg.steps
            );
        }
        return finish(
            trainer.run(RunOptions {
                progress,
                log_lines: progress,
                stop_after: a.stop_after,
            })?,
            &out,
        );
    }
    let threads = a.threads.unwrap_or_else(available_threads).max(1);
    set_threads(threads);
    let sources = if a.method == MethodKind::Upper {
        Vec::new()
    } else {
        a.sources.clone()
    };
    let cfg = TrainConfig {
        dataset: a.dataset.as_str().to_string(),
        data_dir: a.data_dir.clone(),
        sources: a.sources.clone(),
        target: a.target,
        method: a.method,
        steps: a.steps,
        batch_size: a.batch_size,
        batch_division: a
            .batch_division
            .unwrap_or(a.method.default_batch_division()),
        lr: a.lr,
        seed: a.seed,
        split_seed: a.split_seed,
        eval_every: a.eval_every,
        checkpoint_every: a.checkpoint_every.unwrap_or(a.eval_every).max(1),
        target_proportions: a.target_proportions.clone(),
        ws_noise: a.ws_noise,
        threads,
        code_version: code_version(),
    };
    cfg.validate()?;
    if a.method.data_needs().sources && cfg.sources.is_empty() {
        anyhow::bail!(
            "method {} needs at least one source domain (--sources)",
            a.method
        );
    }
    let dataset = registry::load(a.dataset, a.data_dir.as_deref(), a.offline, progress)?;
    if let Some(p) = &cfg.target_proportions {
        TrainConfig::check_proportions(p, dataset.n_classes())?;
    }
    let _ = sources;
    let problem = Problem::new(&dataset, &cfg.sources, cfg.target, cfg.split_seed)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| train::default_run_dir(&cfg));
    let mut trainer = Trainer::new(cfg, problem, &out)?;
    if progress {
        let c = trainer.config();
        eprintln!(
            "training {} on {}: sources {} -> target {}, {} steps, batch {} ({}), {} threads -> {}",
            c.method,
            c.dataset,
            if c.sources.is_empty() {
                "-".to_string()
            } else {
                describe_ids(&c.sources)
            },
            c.target,
            c.steps,
            c.batch_size,
            c.batch_division.as_str(),
            c.threads,
            out.display()
        );
    }
    finish(
        trainer.run(RunOptions {
            progress,
            log_lines: progress,
            stop_after: a.stop_after,
        })?,
        &out,
    )
}

fn finish(result: Option<train::eval::RunResult>, out: &std::path::Path) -> Result<()> {
    match result {
        None => {
            eprintln!(
                "stopped early; continue with `codats train --resume --out {}`",
                out.display()
            );
        }
        Some(r) => {
            println!("{}", summary(&r));
            println!("run directory: {}", out.display());
        }
    }
    Ok(())
}

/// One line per selection rule: target-test accuracy and macro-F1, source-test accuracy.
pub fn summary(r: &train::eval::RunResult) -> String {
    let mut lines = vec![format!(
        "{} {} sources [{}] -> target {}, {} steps",
        r.dataset,
        r.method,
        r.sources
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(","),
        r.target,
        r.steps
    )];
    for (rule, res) in &r.selection {
        lines.push(format!(
            "  {rule:<12} (step {:>6}): target-test accuracy {:.2}%  macro-F1 {:.3}  source-test accuracy {:.2}%",
            res.step,
            100.0 * res.target_test.accuracy,
            res.target_test.macro_f1,
            100.0 * res.source_test_accuracy
        ));
    }
    lines.join("\n")
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let cfg = train::checkpoint::read_config(&a.run_dir)?;
    set_threads(cfg.threads);
    let name = DatasetName::parse(&cfg.dataset).map_err(anyhow::Error::msg)?;
    let data_dir = a.data_dir.or(cfg.data_dir.clone());
    let dataset = registry::load(name, data_dir.as_deref(), true, false)?;
    let problem = Problem::new(&dataset, &cfg.sources, cfg.target, cfg.split_seed)?;
    let dir = train::checkpoint::RunDir::open(&a.run_dir)?;
    dir.check_splits(&problem)?;
    let state = dir.read_state()?;
    if state.step < cfg.steps {
        anyhow::bail!(
            "{} stopped at step {} of {}; finish it with `codats train --resume --out {}` first",
            a.run_dir.display(),
            state.step,
            cfg.steps,
            a.run_dir.display()
        );
    }
    let result = train::eval::evaluate_run(&cfg, &problem, &a.run_dir, &state)?;
    dir.write_result(&result)?;
    println!("{}", summary(&result));
    Ok(())
}

fn datasets_cmd(c: DatasetsCommand) -> Result<()> {
    match c {
        DatasetsCommand::List => {
            for d in DatasetName::all() {
                let help = <DatasetName as clap::ValueEnum>::to_possible_value(d)
                    .and_then(|v| v.get_help().map(|h| h.to_string()))
                    .unwrap_or_default();
                println!("{:<10} {help}", d.as_str());
            }
        }
        DatasetsCommand::Info { name, data_dir } => {
            let ds = registry::load(name, data_dir.as_deref(), true, false)?;
            println!(
                "{}: {} domains, {} windows, {} channels x {} samples, {} classes",
                ds.name,
                ds.domains.len(),
                ds.n_windows(),
                ds.channels,
                ds.length,
                ds.n_classes()
            );
            println!("classes: {}", ds.class_names.join(", "));
            let header: Vec<String> = (0..ds.n_classes()).map(|c| format!("{:>6}", c)).collect();
            println!(
                "{:>6} {:>7}  per class {}",
                "domain",
                "windows",
                header.join("")
            );
            for d in &ds.domains {
                let mut counts = vec![0usize; ds.n_classes()];
                for &y in &d.y {
                    counts[y as usize] += 1;
                }
                let cells: Vec<String> = counts.iter().map(|c| format!("{c:>6}")).collect();
                println!("{:>6} {:>7}            {}", d.id, d.len(), cells.join(""));
            }
        }
        DatasetsCommand::Download { name, data_dir } => {
            let dir = registry::dataset_dir(name, data_dir.as_deref());
            let path = match name {
                DatasetName::Ucihar => crate::data::download::ensure_ucihar(&dir, false, true)?,
                DatasetName::Synthetic => {
                    println!("synthetic is generated on the fly; nothing to download");
                    return Ok(());
                }
            };
            println!("{} is ready at {}", name.as_str(), path.display());
        }
    }
    Ok(())
}
