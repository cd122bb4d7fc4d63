//! Command-line interface: clap definitions and wiring only, one file per subcommand. The work
//! happens in the library modules each file calls.

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::nn::Kernels;

mod bench;
mod data_args;
mod datasets;
mod eval;
mod methods;
mod noisy_student;
mod probe;
mod problem;
mod report;
mod ssl;
mod sweep;
mod train;

pub use data_args::DataArgs;
pub use problem::load_problem;

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
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Train a model on source domains and evaluate it on a target domain.
    Train(train::TrainArgs),
    /// Image classification with few labels: train supervised, FixMatch, … on image datasets.
    #[command(subcommand)]
    Ssl(ssl::SslCommand),
    /// Recompute result.json of a run directory from its saved checkpoints.
    Eval(eval::EvalArgs),
    /// List, describe and download datasets.
    #[command(subcommand)]
    Datasets(datasets::DatasetsCommand),
    /// Time the CoDATS training step, inference and data loading (optionally beside PyTorch).
    Bench(bench::BenchArgs),
    /// Run experiment sweeps (experiments/*.toml) locally or on Slurm, and check on them.
    #[command(subcommand)]
    Sweep(sweep::SweepCommand),
    /// Tables, paired t-tests and figures of a sweep directory.
    Report(report::ReportArgs),
    /// List the training methods: what each trains on and its parameters with their defaults.
    Methods(methods::MethodsArgs),
}

/// Parses the command line (exiting with clap's message when it is wrong). For `train` it also
/// records which flags were given rather than defaulted, so `--resume` can refuse the ones
/// that would change the run.
pub fn parse() -> Cli {
    let mut cmd = Cli::command();
    let matches = cmd.clone().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit());
    if let (Command::Train(a), Some(("train", m)), Some(sub)) = (
        &mut cli.command,
        matches.subcommand(),
        cmd.find_subcommand("train"),
    ) {
        a.given = train::given_flags(m, sub);
    }
    let ssl_given = |name: &str| -> Option<Vec<String>> {
        let (_, m) = matches.subcommand().filter(|(n, _)| *n == "ssl")?;
        let (_, m) = m.subcommand().filter(|(n, _)| *n == name)?;
        let sub = cmd.find_subcommand("ssl")?.find_subcommand(name)?;
        Some(train::given_flags(m, sub))
    };
    match &mut cli.command {
        Command::Ssl(ssl::SslCommand::Train(a)) => a.given = ssl_given("train").unwrap_or_default(),
        Command::Ssl(ssl::SslCommand::NoisyStudent(a)) => {
            a.train.given = ssl_given("noisy-student").unwrap_or_default()
        }
        _ => {}
    }
    cli
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Ssl(c) => ssl::run(c),
        Command::Eval(a) => eval::run(a),
        Command::Datasets(c) => datasets::run(c),
        Command::Bench(a) => bench::run(a),
        Command::Sweep(c) => sweep::run(c),
        Command::Report(a) => report::run(a),
        Command::Methods(a) => {
            print!(
                "{}",
                if a.survey {
                    crate::methods::survey::grid()
                } else {
                    methods::table()
                }
            );
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
pub(crate) fn set_threads(threads: usize, kernels: Kernels) {
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    if kernels == Kernels::Fast && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

pub(crate) fn available_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
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
pub(crate) fn parse_param(s: &str) -> std::result::Result<(String, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let v: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{k}: {v:?} is not a number"))?;
    Ok((k.trim().to_string(), v))
}

/// `32x32` → `[32, 32]` (width, height).
pub(crate) fn parse_size(s: &str) -> Result<[u32; 2], String> {
    let bad = || format!("{s:?}: expected WIDTHxHEIGHT, e.g. 32x32");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok([
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ])
}
