//! Command-line interface: clap definitions and wiring only.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::cli_data::{self, DataArgs, DatasetsCommand};
use crate::config::{code_version, TrainConfig};
use crate::data::batch::BatchDivision;
use crate::data::registry::DatasetName;
use crate::methods::MethodKind;
use crate::nn::Kernels;
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
    /// Time the CoDATS training step, inference and data loading (optionally beside PyTorch).
    Bench(BenchArgs),
    /// Run experiment sweeps (experiments/*.toml) locally or on Slurm, and check on them.
    #[command(subcommand)]
    Sweep(crate::cli_sweep::SweepCommand),
    /// Tables, paired t-tests and figures of a sweep directory.
    Report(crate::cli_sweep::ReportArgs),
    /// List the training methods: what each trains on and its parameters with their defaults.
    Methods,
}

/// `codats bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example (side by side with the PyTorch anchor, same run, same threads):\n  \
codats bench --batch 128,512 --sources 3 --threads 1,2 --rounds 3 --torch-python /tmp/torch-venv/bin/python\n\n\
Each configuration runs in its own process; --json prints one JSON line per configuration with\n\
samples_per_s and ms_per_step (and GFLOP/s of the convolution work, peak RSS, phases_ms, and\n\
rounds_ms with every round's time), plus one ratio line per (batch, threads) with the anchor."
)]
pub struct BenchArgs {
    /// Total samples per step over all domains (comma list); divided evenly over sources + target.
    #[arg(long, value_delimiter = ',', default_values_t = [128usize, 512])]
    pub batch: Vec<usize>,
    /// Number of source domains (the target adds one more).
    #[arg(long, default_value_t = 3)]
    pub sources: usize,
    /// Thread counts to measure (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize])]
    pub threads: Vec<usize>,
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// FCN implementations to time (comma list: fast, candle).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Kernels::Fast])]
    pub kernels: Vec<Kernels>,
    /// Print one JSON line per configuration instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Python interpreter with torch installed: also run the PyTorch anchor with the same settings.
    #[arg(long)]
    pub torch_python: Option<PathBuf>,
    /// The PyTorch anchor script.
    #[arg(long, default_value_os_t = crate::bench::default_anchor())]
    pub anchor: PathBuf,
    /// UCI HAR folder for the load-time measurement (default: the usual data lookup).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Skip the inference, GEMM and load measurements.
    #[arg(long)]
    pub train_only: bool,
    /// Measure each training configuration this many times, codats and PyTorch in turn (who goes
    /// first alternates); rows show the median round, the ratio is the median of the rounds'
    /// back-to-back ratios. Shared machines drift by ±15 % within seconds: use 3 or more.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Also print where the training step's time goes (forward, backward, optimiser, and the
    /// fast kernels' convolutions, batch-norm passes and domain head), in ms per step.
    #[arg(long)]
    pub phases: bool,
    /// Internal: measure one configuration in this process and print its JSON line.
    #[arg(long, hide = true, value_enum)]
    pub one: Option<crate::bench::What>,
}

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
    #[arg(long, value_parser = at_least_one)]
    pub checkpoint_every: Option<usize>,
    /// DA-WS: known target label proportions, one per class, summing to 1 (default: the
    /// target's train-split proportions, simulating reported proportions).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub target_proportions: Option<Vec<f64>>,
    /// DA-WS: perturb the target proportions by this total amount (L1 distance, e.g. 0.1) and
    /// renormalise, to measure robustness to wrong proportions (deterministic from --seed).
    #[arg(long)]
    pub ws_noise: Option<f64>,
    /// A hyper-parameter of the method, as NAME=VALUE (repeatable; e.g. `--param coral_weight=0.5`).
    /// Each method's parameters and their paper defaults: `codats methods`; config.toml saves
    /// every one under [method_params].
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
    /// No progress bar or log lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop after N steps without a final checkpoint, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
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

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train_cmd(a),
        Command::Eval(a) => eval_cmd(a),
        Command::Datasets(c) => cli_data::run(c),
        Command::Bench(a) => bench_cmd(a),
        Command::Sweep(c) => crate::cli_sweep::sweep_cmd(c),
        Command::Report(a) => crate::cli_sweep::report_cmd(a),
        Command::Methods => {
            print!("{}", methods_table());
            Ok(())
        }
    }
}

/// Sizes the thread pools; must run before the first tensor op (both pools read the
/// environment once). rayon's pool, which runs the fast kernels and candle's matmuls, gets
/// `threads`. candle 0.11 also keeps its own pool for elementwise ops, whose workers spin after
/// every op. With the fast kernels it only runs small ops (heads, losses) and its spinning worker
/// can only take a core from the GEMMs, so it gets no workers then, unless the user set
/// `CANDLE_NUM_THREADS`. Measured at batch 128 on 2 cores, interleaved runs: 12–14 ms faster per
/// step in a first comparison, within the noise (≈ 2 ms, then 0) in two later ones.
fn set_threads(threads: usize, kernels: Kernels) {
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    if kernels == Kernels::Fast && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
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
        set_threads(cfg.threads, cfg.kernels);
        let dataset = cli_data::load_for_run(
            DatasetName::parse(&cfg.dataset).map_err(anyhow::Error::msg)?,
            cfg.data_dir.as_deref(),
            a.offline,
            a.quiet,
            &cfg.data,
            a.data.no_cache,
        )?;
        let problem = Problem::for_run(&dataset, &cfg)?;
        let mut trainer = Trainer::resume(problem, &out)?;
        if progress {
            eprintln!(
                "resuming {} after {} of {} updates",
                out.display(),
                trainer.step(),
                cfg.updates()
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
    let dataset = a.dataset.unwrap_or(DatasetName::Synthetic);
    let Some(target) = a.target else {
        anyhow::bail!("--target is required unless --resume is given");
    };
    let threads = a.threads.unwrap_or_else(available_threads).max(1);
    set_threads(threads, a.kernels);
    let cfg = TrainConfig {
        dataset: dataset.as_str().to_string(),
        data_dir: a.data_dir.clone(),
        sources: a.sources.clone(),
        target,
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
        method_params: a
            .method
            .resolve_params(&a.params.iter().cloned().collect())
            .map_err(anyhow::Error::msg)?,
        target_proportions: a.target_proportions.clone(),
        ws_noise: a.ws_noise,
        threads,
        kernels: a.kernels,
        code_version: code_version(),
        conventions: crate::config::CONVENTIONS,
        data: a.data.options(dataset)?,
    };
    cfg.validate()?;
    if a.method.data_needs().sources && cfg.sources.is_empty() {
        anyhow::bail!(
            "method {} needs at least one source domain (--sources)",
            a.method
        );
    }
    let dataset = cli_data::load_for_run(
        dataset,
        a.data_dir.as_deref(),
        a.offline,
        a.quiet,
        &cfg.data,
        a.data.no_cache,
    )?;
    if let Some(p) = &cfg.target_proportions {
        TrainConfig::check_proportions(p, dataset.n_classes())?;
    }
    let problem = Problem::for_run(&dataset, &cfg)?;
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
    set_threads(cfg.threads, cfg.kernels);
    let name = DatasetName::parse(&cfg.dataset).map_err(anyhow::Error::msg)?;
    let data_dir = a.data_dir.or(cfg.data_dir.clone());
    let dataset = cli_data::load_for_run(name, data_dir.as_deref(), true, true, &cfg.data, false)?;
    let problem = Problem::for_run(&dataset, &cfg)?;
    let dir = train::checkpoint::RunDir::open(&a.run_dir)?;
    dir.check_splits(&problem)?;
    let state = dir.read_state()?;
    if state.step < cfg.updates() {
        anyhow::bail!(
            "{} stopped after {} of {} updates; finish it with `codats train --resume --out {}` first",
            a.run_dir.display(),
            state.step,
            cfg.updates(),
            a.run_dir.display()
        );
    }
    let result = train::eval::evaluate_run(&cfg, &problem, &a.run_dir, &state)?;
    dir.write_result(&result)?;
    println!("{}", summary(&result));
    Ok(())
}
fn bench_cmd(a: BenchArgs) -> Result<()> {
    use crate::bench::{self, Measurement, One, What};
    if let Some(what) = a.one {
        let threads = a.threads.first().copied().unwrap_or(1);
        set_threads(threads, a.kernels.first().copied().unwrap_or_default());
        let m = bench::run_one(One {
            what,
            batch: a.batch.first().copied().unwrap_or(128),
            sources: a.sources,
            threads,
            steps: a.steps,
            warmup: a.warmup,
            kernels: a.kernels.first().copied().unwrap_or_default(),
        })?;
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    let exe = std::env::current_exe().context("locating the codats executable")?;
    let emit = |m: &Measurement| -> Result<()> {
        if a.json {
            println!("{}", serde_json::to_string(m)?);
        } else {
            println!("{}", bench::format_row(m));
        }
        Ok(())
    };
    if !a.json {
        println!("{}", bench::header());
    }
    let one = |what, batch, threads, kernels| One {
        what,
        batch,
        sources: a.sources,
        threads,
        steps: a.steps,
        warmup: a.warmup,
        kernels,
    };
    let mut ratios = Vec::new();
    let mut profiled = Vec::new();
    for &batch in &a.batch {
        for &threads in &a.threads {
            let mut ours: Vec<Vec<Measurement>> = vec![Vec::new(); a.kernels.len()];
            let mut theirs = Vec::new();
            let mut paired = Vec::new();
            for round in 0..a.rounds {
                let torch = |theirs: &mut Vec<Measurement>| -> Result<Option<f64>> {
                    let Some(py) = &a.torch_python else {
                        return Ok(None);
                    };
                    let t = bench::run_torch(py, &a.anchor, batch, a.sources, threads, a.steps)?;
                    let s = t.samples_per_s;
                    theirs.push(t);
                    Ok(Some(s))
                };
                let torch_first = round % 2 == 1;
                let mut t = if torch_first {
                    torch(&mut theirs)?
                } else {
                    None
                };
                let mut fast = None;
                for (i, &k) in a.kernels.iter().enumerate() {
                    let m = bench::spawn_one(&exe, one(What::TrainStep, batch, threads, k))?;
                    if k == Kernels::Fast {
                        fast = Some(m.samples_per_s);
                    }
                    ours[i].push(m);
                }
                if !torch_first {
                    t = torch(&mut theirs)?;
                }
                if let (Some(f), Some(t)) = (fast, t) {
                    paired.push(f / t);
                }
            }
            let mut fast = None;
            for (runs, &k) in ours.into_iter().zip(&a.kernels) {
                if let Some(m) = Measurement::median_of(runs) {
                    emit(&m)?;
                    profiled.push(m.clone());
                    if k == Kernels::Fast {
                        fast = Some(m);
                    }
                }
            }
            if let Some(t) = Measurement::median_of(theirs) {
                emit(&t)?;
                if let (Some(f), Some(r)) = (&fast, bench::median(&paired)) {
                    ratios.push((batch, threads, r, paired, f.peak_rss_mib, t.peak_rss_mib));
                }
            }
        }
    }
    if !a.train_only {
        let max_threads = a.threads.iter().copied().max().unwrap_or(1);
        for &threads in &a.threads {
            emit(&bench::spawn_one(
                &exe,
                one(What::Gemm, 2048, threads, Kernels::Fast),
            )?)?;
        }
        for &batch in &a.batch {
            emit(&bench::spawn_one(
                &exe,
                one(What::Inference, batch, max_threads, Kernels::Fast),
            )?)?;
        }
        let dir = crate::data::registry::dataset_dir(DatasetName::Ucihar, a.data_dir.as_deref());
        match bench::load_ucihar(&dir) {
            Ok(m) => emit(&m)?,
            Err(e) => eprintln!("(UCI HAR load not timed: {e})"),
        }
    }
    if a.phases && !a.json {
        println!("\n{}", bench::phase_header());
        for m in &profiled {
            if let Some(row) = bench::format_phases(m) {
                println!("{row}");
            }
        }
    }
    for (batch, threads, r, paired, ours, theirs) in ratios {
        if a.json {
            println!(
                "{}",
                serde_json::json!({"framework": "ratio", "batch": batch, "threads": threads,
                    "codats_over_pytorch_samples_per_s": r, "rounds": paired,
                    "codats_peak_rss_mib": ours, "pytorch_peak_rss_mib": theirs})
            );
        } else {
            let each: Vec<String> = paired.iter().map(|v| format!("{v:.2}")).collect();
            let how = if paired.len() > 1 {
                format!(
                    " (median of {} back-to-back rounds: {})",
                    paired.len(),
                    each.join(", ")
                )
            } else {
                String::new()
            };
            println!(
                "batch {batch}, {threads} threads: codats is {r:.2}x PyTorch's samples/s{how}"
            );
        }
    }
    Ok(())
}

/// A count that must be at least 1 (threads, jobs, checkpoint interval): 0 is refused instead
/// of silently running as 1.
pub fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1 (got 0)".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// Parses `--param NAME=VALUE`.
fn parse_param(s: &str) -> std::result::Result<(String, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let v: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{k}: {v:?} is not a number"))?;
    Ok((k.trim().to_string(), v))
}

/// `codats methods`: one block per registered method.
pub fn methods_table() -> String {
    use crate::methods::{TargetUse, REGISTRY};
    let mut out = String::new();
    for m in REGISTRY {
        let target = match m.needs.target {
            TargetUse::None => "no target",
            TargetUse::Unlabelled => "unlabelled target",
            TargetUse::Labelled => "labelled target",
        };
        let sources = if m.needs.sources {
            "labelled sources, "
        } else {
            ""
        };
        let mut line = format!(
            "{:<12} {} — trains on {sources}{target}; batch division {}",
            m.name,
            m.help,
            m.batch_division.as_str()
        );
        if m.uses_proportions {
            line.push_str("; uses --target-proportions / --ws-noise");
        }
        if !m.aliases.is_empty() {
            line.push_str(&format!("; also accepted as {}", m.aliases.join(", ")));
        }
        out.push_str(&line);
        out.push('\n');
        for p in m.params {
            out.push_str(&format!(
                "    --param {}={} ({}; valid {} to {})\n",
                p.name, p.default, p.help, p.min, p.max
            ));
        }
    }
    out
}
