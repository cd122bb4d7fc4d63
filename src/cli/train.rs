//! `codats train`: one run, or the continuation of an interrupted one.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::problem::load_problem;
use super::{at_least_one, available_threads, parse_param, set_threads, DataArgs};
use crate::config::{code_version, defaults, MethodConfig, TrainConfig};
use crate::data::batch::BatchDivision;
use crate::data::registry::DatasetName;
use crate::methods::MethodKind;
use crate::nn::series::SeriesBackbone;
use crate::nn::Kernels;
use crate::problem::describe_ids;
use crate::train::checkpoint::RunDir;
use crate::train::run_lock::RunLock;
use crate::train::{self, RunOptions, Trainer};

/// `codats train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  codats train --dataset ucihar --sources 1,3,5 --target 7 --method codats --steps 3000\n\n\
Data: --data-dir DIR, else $CODATS_DATA_DIR/<dataset>/, else the user cache; a missing archive is\n\
downloaded (verified) unless --offline."
)]
pub struct TrainArgs {
    /// Dataset name (`codats datasets list`); default: synthetic, which needs no data.
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Source domain ids, comma separated (UCI HAR: subjects 1..30). `target_only` does not
    /// train on them, but still reports its accuracy on their test windows.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub sources: Vec<u32>,
    /// Target domain id.
    #[arg(long, required_unless_present = "resume")]
    pub target: Option<u32>,
    /// Training method (every registered method is listed below).
    #[arg(long, value_enum, default_value_t = MethodKind::CODATS)]
    pub method: MethodKind,
    /// Training steps (the paper used 30000).
    #[arg(long, default_value_t = defaults::STEPS)]
    pub steps: usize,
    /// Total batch size per step, divided over domains by --batch-division.
    #[arg(long, default_value_t = defaults::BATCH)]
    pub batch_size: usize,
    /// all: batch / (sources + 1) per domain; sources: batch / sources per source, whole batch of
    /// target; none: whole batch each. Default: `sources` for codats_ws, else `all`.
    #[arg(long, value_enum)]
    pub batch_division: Option<BatchDivision>,
    /// Adam learning rate.
    #[arg(long, default_value_t = defaults::LR)]
    pub lr: f64,
    /// Seed for initialisation, batching and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the per-domain train/valid/test splits.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Evaluate on source and target validation every N steps.
    #[arg(long, default_value_t = defaults::EVAL_EVERY)]
    pub eval_every: usize,
    /// Write a resumable checkpoint every N steps (default: --eval-every).
    #[arg(long, value_parser = at_least_one)]
    pub checkpoint_every: Option<usize>,
    /// Add the few-shot model-selection rule (`few_shot` in result.json): each evaluation is
    /// scored on K labelled target windows per class drawn (by --split-seed) from the target's
    /// training split, the only target labels it sees; the windows are recorded in
    /// result.json. 0: off. AdaTime's few-shot target risk uses 5.
    #[arg(long, default_value_t = 0)]
    pub few_shot: usize,
    /// DA-WS: known target label proportions, one per class, summing to 1 (default: the
    /// target's train-split proportions, simulating reported proportions).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub target_proportions: Option<Vec<f64>>,
    /// DA-WS: perturb the target proportions by this total amount (L1 distance, e.g. 0.1) and
    /// renormalise, to measure robustness to wrong proportions (deterministic from --seed).
    #[arg(long)]
    pub ws_noise: Option<f64>,
    /// DA-WS on top of the method: add the weak-supervision loss towards the target label
    /// proportions to any adaptation method's own (saved as `ws = true` in [method]; codats_ws
    /// has it already).
    #[arg(long)]
    pub ws: bool,
    /// A hyper-parameter of the method, as NAME=VALUE (repeatable; e.g. `--param coral_weight=0.5`).
    /// Each method's parameters and their paper defaults: `codats methods`; config.toml saves
    /// every one in its [method] table.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, f64)>,
    /// Run directory (default: runs/<dataset>-<method>-<sources>-to-<target>-s<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the interrupted run in --out from its last checkpoint (its config.toml decides
    /// everything else).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Folder holding this dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download; fail if the data is missing.
    #[arg(long)]
    pub offline: bool,
    /// CPU threads for tensor kernels (default: all cores).
    #[arg(long, value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// FCN implementation: fast (hand-written CPU kernels) or candle (plain candle ops, the reference).
    #[arg(long, value_enum, default_value_t = Kernels::Fast)]
    pub kernels: Kernels,
    /// A GCT gate (gated channel transformation, identity at initialisation) in front of each
    /// FCN convolution; runs on the plain candle path (implies --kernels candle; refuses
    /// --kernels fast).
    #[arg(long)]
    pub gct: bool,
    /// Feature extractor under the task and domain heads: fcn (the CoDATS FCN), adatime-cnn
    /// (AdaTime's 3-block CNN, for comparisons with AdaTime's tables) or gru (a 100-unit GRU,
    /// R-DANN's). The fast kernels speed up the FCN only; the others run on candle ops.
    #[arg(long, value_enum, default_value_t = SeriesBackbone::Fcn)]
    pub backbone: SeriesBackbone,
    /// No progress bar or log lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop after N steps without a final checkpoint, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
    /// The flags given on the command line (not defaulted), as `--name`: filled by
    /// [`super::parse`] so `--resume` can refuse those that would change the run.
    #[arg(skip)]
    pub given: Vec<String>,
}

impl TrainArgs {
    /// The arguments of `codats train --resume --out OUT` (for `codats ssl train --resume`).
    pub(crate) fn for_resume(
        out: Option<PathBuf>,
        data_dir: Option<PathBuf>,
        quiet: bool,
        stop_after: Option<usize>,
        given: Vec<String>,
    ) -> Self {
        TrainArgs {
            dataset: None,
            sources: Vec::new(),
            target: None,
            method: MethodKind::CODATS,
            steps: defaults::STEPS,
            batch_size: defaults::BATCH,
            batch_division: None,
            lr: defaults::LR,
            seed: 0,
            split_seed: 0,
            eval_every: defaults::EVAL_EVERY,
            checkpoint_every: None,
            few_shot: 0,
            target_proportions: None,
            ws_noise: None,
            ws: false,
            params: Vec::new(),
            out,
            resume: true,
            data_dir,
            offline: true,
            threads: None,
            kernels: Kernels::Fast,
            gct: false,
            backbone: SeriesBackbone::Fcn,
            quiet,
            stop_after,
            data: DataArgs::default(),
            given,
        }
    }
}

/// Flags `--resume` accepts: they change how the run is found, loaded or reported, not what
/// it computes.
const RESUME_FLAGS: &[&str] = &[
    "--resume",
    "--out",
    "--quiet",
    "--data-dir",
    "--offline",
    "--no-cache",
    "--stop-after",
];

/// The long names (`--steps`) of the arguments in `m` that were given on the command line.
pub(crate) fn given_flags(m: &clap::ArgMatches, cmd: &clap::Command) -> Vec<String> {
    m.ids()
        .filter_map(|id| {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id)?;
            let given = m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine);
            given.then(|| format!("--{}", arg.get_long().unwrap_or(id.as_str())))
        })
        .collect()
}

/// Refuses flags given with `--resume` that would change the run: its config.toml decides.
fn refuse_run_flags(given: &[String]) -> Result<()> {
    if let Some(flag) = given.iter().find(|f| !RESUME_FLAGS.contains(&f.as_str())) {
        anyhow::bail!("{flag} cannot be changed on --resume; the run's config.toml decides it");
    }
    Ok(())
}

/// Takes the run directory's lock and removes what interrupted writes left in it, saying so.
fn lock_for_resume(out: &std::path::Path) -> Result<RunLock> {
    let lock = RunLock::acquire(out)?;
    for p in RunDir::open(out)?.remove_leftovers()? {
        eprintln!("removed {} (left by an interrupted write)", p.display());
    }
    Ok(lock)
}

/// `codats train --resume`: continues (or, stopped before its first checkpoint, restarts) the
/// run in `--out` with the settings of its config.toml.
pub(crate) fn resume(a: TrainArgs) -> Result<()> {
    let out = a.out.context("--resume needs --out RUN_DIR")?;
    // Plainly first: a missing run is named as the missing config.toml.
    train::checkpoint::read_config(&out)?;
    refuse_run_flags(&a.given)?;
    let (offline, no_cache) = (a.offline, a.data.no_cache);
    let result = resume_run(
        &out,
        a.data_dir.as_deref(),
        (offline, no_cache),
        a.quiet,
        a.stop_after,
    )?;
    finish(result, &out)
}

/// Continues the run in `out` (its config.toml decides everything; `data_dir` overrides where
/// the data is): its result, or `None` when `stop_after` stopped it.
pub(crate) fn resume_run(
    out: &std::path::Path,
    data_dir: Option<&std::path::Path>,
    (offline, no_cache): (bool, bool),
    quiet: bool,
    stop_after: Option<usize>,
) -> Result<Option<train::result::RunResult>> {
    let progress = !quiet;
    train::checkpoint::read_config(out)?;
    let _lock = lock_for_resume(out)?;
    let cfg = train::checkpoint::read_verified_config(out)?;
    set_threads(cfg.threads, cfg.kernels);
    let problem = load_problem(&cfg, data_dir, offline, quiet, no_cache)?;
    let mut trainer = Trainer::resume(problem, out)?;
    if progress && trainer.step() == 0 {
        eprintln!(
            "starting {} over: it stopped before its first checkpoint",
            out.display()
        );
    } else if progress {
        eprintln!(
            "resuming {} after {} of {} updates",
            out.display(),
            trainer.step(),
            cfg.updates()
        );
    }
    trainer.run(RunOptions {
        progress,
        log_lines: progress,
        stop_after,
    })
}

/// Runs `codats train`.
pub fn run(a: TrainArgs) -> Result<()> {
    let progress = !a.quiet;
    if a.resume {
        return resume(a);
    }
    let dataset = a.dataset.unwrap_or(DatasetName::Synthetic);
    let Some(target) = a.target else {
        anyhow::bail!("--target is required unless --resume is given");
    };
    let threads = a.threads.unwrap_or_else(available_threads).max(1);
    // GCT exists on the plain candle path only: --gct picks it unless --kernels was given (a
    // given `--kernels fast` is refused by the config check).
    let kernels = if a.gct && !a.given.iter().any(|f| f == "--kernels") {
        Kernels::Candle
    } else {
        a.kernels
    };
    set_threads(threads, kernels);
    let cfg = TrainConfig {
        dataset: dataset.as_str().to_string(),
        data_dir: a.data_dir.clone(),
        sources: a.sources.clone(),
        target,
        steps: a.steps,
        batch_size: a.batch_size,
        batch_division: a
            .batch_division
            .unwrap_or(a.method.default_batch_division()),
        lr: a.lr,
        seed: a.seed,
        split_seed: a.split_seed,
        eval_every: a.eval_every,
        checkpoint_every: a.checkpoint_every.unwrap_or(a.eval_every),
        threads,
        kernels,
        gct: a.gct,
        // A method defined on one feature extractor (rdann: the GRU) gets it unless the flag
        // was given (a different one is then refused by the config check).
        backbone: match a.method.info().backbone {
            Some(b) if !a.given.iter().any(|f| f == "--backbone") => b,
            _ => a.backbone,
        },
        few_shot: a.few_shot,
        code_version: code_version(),
        conventions: crate::config::CONVENTIONS,
        method: MethodConfig {
            name: a.method,
            target_proportions: a.target_proportions.clone(),
            ws_noise: a.ws_noise,
            ws: a.ws,
            params: a.params.iter().cloned().collect(),
        },
        data: a.data.options(dataset)?,
        images: None,
    }
    .check()?;
    let problem = load_problem(&cfg, None, a.offline, a.quiet, a.data.no_cache)?;
    if !a.quiet {
        for w in problem.warnings() {
            eprintln!("{w}");
        }
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| train::default_run_dir(&cfg));
    let _lock = RunLock::acquire(&out)?;
    let mut trainer = Trainer::new(cfg, problem, &out)?;
    if progress {
        let c = trainer.config();
        eprintln!(
            "training {} on {}: sources {} -> target {}, {} steps, batch {} ({}), {} threads -> {}",
            c.method.name,
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
    let result = trainer.run(RunOptions {
        progress,
        log_lines: progress,
        stop_after: a.stop_after,
    })?;
    if progress {
        eprintln!("{}", trainer.timing().summary());
    }
    finish(result, &out)
}

pub(crate) fn finish(
    result: Option<train::result::RunResult>,
    out: &std::path::Path,
) -> Result<()> {
    match result {
        None => {
            eprintln!(
                "stopped early; continue with `codats train --resume --out {}`",
                out.display()
            );
        }
        Some(r) => {
            println!("{}", r.summary());
            println!("run directory: {}", out.display());
        }
    }
    Ok(())
}
