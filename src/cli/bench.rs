//! `codats bench`: the training step beside the PyTorch anchor, inference, GEMM and loading.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::set_threads;
use crate::nn::Kernels;

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
    /// Total samples per step over all domains (comma list); divided evenly over sources + target
    /// [default: 128,512]. With --task ssl: labelled images per step, B [default: 64].
    #[arg(long, value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// What to time: codats (the CoDATS step beside torch_codats_step.py) or ssl (the image step
    /// beside torch_ssl_step.py: FixMatch over B + 2μB images, or supervised over B).
    #[arg(long, value_enum, default_value_t = BenchTask::Codats)]
    pub task: BenchTask,
    /// --task ssl: fixmatch or supervised.
    #[arg(long, default_value = "fixmatch", value_parser = ["fixmatch", "supervised"])]
    pub method: String,
    /// --task ssl: image side (28 for MNIST-sized, 32 for CIFAR-sized).
    #[arg(long, default_value_t = 28)]
    pub size: usize,
    /// --task ssl: image channels (1 or 3).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// --task ssl: unlabelled images per labelled one (μ).
    #[arg(long, default_value_t = 7)]
    pub mu: usize,
    /// Internal: measure one image-step configuration in this process.
    #[arg(long, hide = true)]
    pub one_ssl: bool,
    /// Number of source domains (the target adds one more).
    #[arg(long, default_value_t = 3, value_parser = super::at_least_one)]
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

/// What `codats bench` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchTask {
    /// The CoDATS training step (and inference, GEMM, loading).
    Codats,
    /// The image semi-supervised step on the small CNN.
    Ssl,
}

/// Runs `codats bench`.
pub fn run(mut a: BenchArgs) -> Result<()> {
    use crate::bench::{self, One};
    if a.task == BenchTask::Ssl {
        return run_ssl(a);
    }
    if a.batch.is_empty() {
        a.batch = vec![128, 512];
    }
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
    crate::bench::compare::run(&crate::bench::compare::Compare {
        batch: a.batch,
        sources: a.sources,
        threads: a.threads,
        steps: a.steps,
        warmup: a.warmup,
        kernels: a.kernels,
        json: a.json,
        torch_python: a.torch_python,
        anchor: a.anchor,
        data_dir: a.data_dir,
        train_only: a.train_only,
        rounds: a.rounds,
        phases: a.phases,
    })
}

/// `codats bench --task ssl`: paired rounds of the image step beside `torch_ssl_step.py`.
fn run_ssl(a: BenchArgs) -> Result<()> {
    use crate::bench::{self, ssl};
    let batches = if a.batch.is_empty() {
        vec![64]
    } else {
        a.batch.clone()
    };
    let one = |batch: usize, threads: usize| ssl::SslOne {
        fixmatch: a.method == "fixmatch",
        size: a.size,
        channels: a.channels,
        batch,
        mu: a.mu,
        threads,
        steps: a.steps,
        warmup: a.warmup,
    };
    if a.one_ssl {
        let threads = a.threads.first().copied().unwrap_or(1);
        set_threads(threads, Kernels::Fast);
        let m = ssl::run_one(one(batches[0], threads))?;
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let anchor = if a.anchor == bench::default_anchor() {
        ssl::default_anchor()
    } else {
        a.anchor.clone()
    };
    if !a.json {
        println!("{}", bench::header().replacen("samples/s", "images/s ", 1));
    }
    for &batch in &batches {
        for &threads in &a.threads {
            let o = one(batch, threads);
            let torch = a.torch_python.as_deref().map(|py| (py, anchor.as_path()));
            let (ours, theirs, ratios) = ssl::paired_rounds(&exe, o, a.rounds, torch)?;
            for m in ours.iter().chain(theirs.iter()) {
                if a.json {
                    println!("{}", serde_json::to_string(m)?);
                } else {
                    println!("{}", bench::format_row(m));
                }
            }
            if a.phases {
                if let Some(m) = &ours {
                    let phases = m.phases_ms.clone().unwrap_or_default();
                    let cells: Vec<String> =
                        phases.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
                    println!("  ms per step: {}", cells.join(", "));
                }
            }
            if let Some(r) = bench::median(&ratios) {
                let text = format!(
                    "{}: codats / PyTorch images per second, {} images per step, {threads} threads: {r:.2}x (median of {} paired rounds: {})",
                    a.method,
                    o.images(),
                    ratios.len(),
                    ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ")
                );
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"ratio": r, "rounds": ratios, "method": a.method, "images_per_step": o.images(), "threads": threads})
                    );
                } else {
                    println!("{text}");
                }
            }
        }
    }
    Ok(())
}
