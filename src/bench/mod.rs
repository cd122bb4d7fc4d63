//! `codats bench`: the real CoDATS training step, inference and data loading, timed, side by side
//! with the PyTorch anchor (`../shared/anchors/torch_codats_step.py`) in the same run.
//!
//! Each configuration runs in its own child process (`codats bench --one ...`), because the thread
//! count of the kernels is fixed per process and so that peak memory (max RSS) is per
//! configuration; the parent collects one JSON line from each child.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{code_version, TrainConfig};
use crate::data::batch::BatchDivision;
use crate::methods::{self, Batch, MethodKind, MethodSetup, Slice, StepContext};
use crate::nn::Kernels;
use crate::train::{train_step, Trainer};

pub mod compare;
pub mod loaders;
pub mod ssl;

/// UCI HAR window shape and classes (the benchmark's input).
pub const CHANNELS: usize = 9;
/// Samples per window.
pub const LENGTH: usize = 128;
/// Classes.
pub const CLASSES: usize = 6;

/// Multiply-adds ×2 of one sample through the FCN convolutions: forward, weight gradients, and
/// input gradients of layers 2–3 (the first layer's input needs none).
pub fn conv_flops_per_sample() -> (f64, f64, f64) {
    let layers = [(CHANNELS, 128usize, 8usize), (128, 256, 5), (256, 128, 3)];
    let per = |(cin, cout, k): (usize, usize, usize)| 2.0 * (LENGTH * cin * k * cout) as f64;
    let fwd: f64 = layers.iter().map(|&l| per(l)).sum();
    let dx: f64 = layers[1..].iter().map(|&l| per(l)).sum();
    (fwd, fwd, dx)
}

/// One measured configuration (one JSON line of `codats bench --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// `codats` or `pytorch`.
    pub framework: String,
    /// What was timed: `train_step`, `inference`, `load_ucihar`, `gemm`.
    pub what: String,
    /// FCN kernels (`fast`/`candle`), for codats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<String>,
    /// Samples per step (all domains).
    pub batch: usize,
    /// Source domains (the target adds one more).
    pub sources: usize,
    /// Threads.
    pub threads: usize,
    /// Milliseconds per step (or per load / per product).
    pub ms_per_step: f64,
    /// Samples per second.
    pub samples_per_s: f64,
    /// Throughput of the convolution work (training step) or of the product (gemm), GFLOP/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    /// Share of the step spent in the convolution kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_share: Option<f64>,
    /// Peak resident memory of the process (MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// Milliseconds per step in each phase of the training step (see [`crate::profile::Phase`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases_ms: Option<std::collections::BTreeMap<String, f64>>,
    /// With several rounds: each round's ms/step, in order (`ms_per_step` is their median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds_ms: Option<Vec<f64>>,
}

impl Measurement {
    /// The median round of `rounds` (same configuration, measured in turn; the faster of the
    /// middle two for an even count), with every round's ms/step attached in order; the peak
    /// memory is the largest seen.
    pub fn median_of(mut rounds: Vec<Measurement>) -> Option<Measurement> {
        let times: Vec<f64> = rounds.iter().map(|m| m.ms_per_step).collect();
        let peak = rounds
            .iter()
            .filter_map(|m| m.peak_rss_mib)
            .reduce(f64::max);
        rounds.sort_by(|a, b| a.ms_per_step.total_cmp(&b.ms_per_step));
        let n = rounds.len();
        let mut m = rounds.into_iter().nth(n.checked_sub(1)? / 2)?;
        m.peak_rss_mib = peak;
        if n > 1 {
            m.rounds_ms = Some(times);
        }
        Some(m)
    }
}

/// The median of `v` (mean of the middle two for an even count); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Settings of one child measurement.
#[derive(Debug, Clone, Copy)]
pub struct One {
    /// What to time.
    pub what: What,
    /// Total batch.
    pub batch: usize,
    /// Sources.
    pub sources: usize,
    /// Threads.
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// FCN implementation.
    pub kernels: Kernels,
}

/// What a child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Forward + backward + both Adam updates of CoDATS (GRL and domain head included).
    TrainStep,
    /// Eval-mode forward of the task classifier.
    Inference,
    /// A large f32 matrix product with the same GEMM kernels (the machine's reachable peak).
    Gemm,
}

fn random_slice(n: usize, rng: &mut ChaCha8Rng, labelled: bool) -> Result<Slice> {
    let x: Vec<f32> = (0..n * CHANNELS * LENGTH)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let y: Vec<u32> = (0..n).map(|i| (i % CLASSES) as u32).collect();
    Ok(Slice {
        x: Tensor::from_vec(x, (n, CHANNELS, LENGTH), &Device::Cpu)?,
        y: if labelled {
            Some(Tensor::from_vec(y, n, &Device::Cpu)?)
        } else {
            None
        },
        idx: (0..n).collect(),
        views: Vec::new(),
    })
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs one measurement in this process (threads must already be set).
pub fn run_one(o: One) -> Result<Measurement> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    match o.what {
        What::Gemm => {
            // The same GEMM entry point the fast convolutions use (gemm crate, or OpenBLAS).
            let n = 2048;
            let a: Vec<f32> = (0..n * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let b: Vec<f32> = (0..n * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut c = vec![0.0f32; n * n];
            let mut product =
                || crate::nn::fast::gemm(n, n, n, &mut c, &a, (n, 1), &b, (n, 1), false);
            for _ in 0..o.warmup.max(1) {
                product();
            }
            let t0 = Instant::now();
            for _ in 0..o.steps {
                product();
            }
            let dt = t0.elapsed().as_secs_f64() / o.steps as f64;
            Ok(Measurement {
                framework: "codats".into(),
                what: "gemm".into(),
                kernels: None,
                batch: n,
                sources: 0,
                threads: o.threads,
                ms_per_step: dt * 1e3,
                samples_per_s: 0.0,
                gflops: Some(2.0 * (n * n * n) as f64 / dt / 1e9),
                conv_share: None,
                peak_rss_mib: peak_rss_mib(),
                phases_ms: None,
                rounds_ms: None,
            })
        }
        What::TrainStep | What::Inference => {
            let per = o.batch / (o.sources + 1);
            if per == 0 {
                bail!(
                    "--batch {} is too small for {} sources + target",
                    o.batch,
                    o.sources
                );
            }
            let total = per * (o.sources + 1);
            let kind = MethodKind::CODATS;
            let setup = MethodSetup {
                channels: CHANNELS,
                classes: CLASSES,
                n_sources: o.sources,
                given_proportions: None,
                target_train_proportions: None,
                ws_noise: None,
                ws: false,
                seed: 0,
                kernels: o.kernels,
                gct: false,
                backbone: Default::default(),
                params: Default::default(),
                image: None,
            };
            let varmap = VarMap::new();
            let mut method = methods::build(kind, &setup, &varmap)?;
            crate::nn::glorot_init(&varmap, 0)?;
            let cfg = bench_config(o);
            let mut groups = Trainer::optimisers(&cfg, &varmap, method.as_ref());
            let batch = Batch {
                sources: (0..o.sources)
                    .map(|_| random_slice(per, &mut rng, true))
                    .collect::<Result<_>>()?,
                target: Some(random_slice(per, &mut rng, false)?),
            };
            let mut drop_rng = ChaCha8Rng::seed_from_u64(1);
            let steps = o.steps.max(1);
            let mut phases = None;
            let (dt, conv) = if o.what == What::TrainStep {
                let mut step = |i: usize| -> Result<()> {
                    let mut ctx = StepContext {
                        step: i,
                        total_steps: steps + o.warmup,
                        rng: &mut drop_rng,
                    };
                    train_step(method.as_mut(), &mut groups, &batch, &mut ctx)?;
                    Ok(())
                };
                for i in 0..o.warmup {
                    step(i)?;
                }
                crate::profile::reset();
                let t0 = Instant::now();
                for i in 0..steps {
                    step(o.warmup + i)?;
                }
                let dt = t0.elapsed().as_secs_f64() / steps as f64;
                let per_step = |p| crate::profile::total(p).as_secs_f64() / steps as f64;
                phases = Some(
                    crate::profile::Phase::ALL
                        .iter()
                        .map(|&p| (p.name().to_string(), 1e3 * per_step(p)))
                        .collect(),
                );
                (dt, per_step(crate::profile::Phase::Conv))
            } else {
                let x = Tensor::cat(
                    &[
                        &batch.sources[0].x,
                        &batch.target.as_ref().expect("target").x,
                    ],
                    0,
                )?;
                let x = x.repeat((o.sources + 1, 1, 1))?.narrow(0, 0, total)?;
                for _ in 0..o.warmup {
                    method.predict(&x)?;
                }
                let t0 = Instant::now();
                for _ in 0..steps {
                    method.predict(&x)?;
                }
                (t0.elapsed().as_secs_f64() / steps as f64, 0.0)
            };
            let (f, w, d) = conv_flops_per_sample();
            let train = o.what == What::TrainStep;
            let fast = o.kernels == Kernels::Fast;
            Ok(Measurement {
                framework: "codats".into(),
                what: if train { "train_step" } else { "inference" }.into(),
                kernels: Some(format!("{:?}", o.kernels).to_lowercase()),
                batch: total,
                sources: o.sources,
                threads: o.threads,
                ms_per_step: dt * 1e3,
                samples_per_s: total as f64 / dt,
                gflops: (train && fast && conv > 0.0)
                    .then(|| (f + w + d) * total as f64 / conv / 1e9),
                conv_share: (train && fast).then(|| conv / dt),
                peak_rss_mib: peak_rss_mib(),
                phases_ms: phases,
                rounds_ms: None,
            })
        }
    }
}

fn bench_config(o: One) -> TrainConfig {
    TrainConfig {
        dataset: "bench".into(),
        data_dir: None,
        sources: (1..=o.sources as u32).collect(),
        target: 0,
        method: crate::config::MethodConfig::new(MethodKind::CODATS),
        steps: o.steps,
        batch_size: o.batch,
        batch_division: BatchDivision::All,
        lr: 1e-4,
        seed: 0,
        split_seed: 0,
        eval_every: 1,
        checkpoint_every: 1,
        threads: o.threads,
        kernels: o.kernels,
        gct: false,
        backbone: Default::default(),
        data: Default::default(),
        images: None,
        conventions: crate::config::CONVENTIONS,
        few_shot: 0,
        code_version: code_version(),
    }
}

/// Runs `codats bench --one ...` for one configuration in a child process and parses its line.
pub fn spawn_one(exe: &Path, o: One) -> Result<Measurement> {
    let what = match o.what {
        What::TrainStep => "train-step",
        What::Inference => "inference",
        What::Gemm => "gemm",
    };
    let out = Command::new(exe)
        .args(["bench", "--one", what])
        .args([
            "--batch",
            &o.batch.to_string(),
            "--sources",
            &o.sources.to_string(),
        ])
        .args([
            "--threads",
            &o.threads.to_string(),
            "--steps",
            &o.steps.to_string(),
        ])
        .args([
            "--warmup",
            &o.warmup.to_string(),
            "--kernels",
            &format!("{:?}", o.kernels).to_lowercase(),
        ])
        .env("RAYON_NUM_THREADS", o.threads.to_string())
        .output()
        .context("running a benchmark child process")?;
    if !out.status.success() {
        bail!(
            "benchmark child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("parsing benchmark output {line:?}"))
}

/// Runs the PyTorch anchor with the same settings under `python`; its peak RSS is taken from
/// the kernel's accounting of the child (`wait4`).
pub fn run_torch(
    python: &Path,
    script: &Path,
    batch: usize,
    sources: usize,
    threads: usize,
    steps: usize,
) -> Result<Measurement> {
    #[derive(Deserialize)]
    struct TorchLine {
        batch: usize,
        ms_per_step: f64,
        samples_per_s: f64,
    }
    if !script.exists() {
        bail!(
            "PyTorch anchor not found at {} (pass --anchor PATH)",
            script.display()
        );
    }
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args([
            "--batch",
            &batch.to_string(),
            "--sources",
            &sources.to_string(),
        ])
        .args([
            "--threads",
            &threads.to_string(),
            "--steps",
            &steps.to_string(),
        ])
        .env("OMP_NUM_THREADS", threads.to_string());
    let output = run_measured(cmd)?;
    let line = output.0.lines().last().unwrap_or_default();
    let t: TorchLine =
        serde_json::from_str(line).with_context(|| format!("parsing anchor output {line:?}"))?;
    Ok(Measurement {
        framework: "pytorch".into(),
        what: "train_step".into(),
        kernels: None,
        batch: t.batch,
        sources,
        threads,
        ms_per_step: t.ms_per_step,
        samples_per_s: t.samples_per_s,
        gflops: None,
        conv_share: None,
        peak_rss_mib: Some(output.1),
        phases_ms: None,
        rounds_ms: None,
    })
}

/// Runs `cmd` to completion, returning its stdout and its peak RSS in MiB (the kernel's
/// accounting of the child, `wait4`); a failure is an error with its stderr.
pub fn run_measured(mut cmd: Command) -> Result<(String, f64)> {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    use std::io::Read;
    let mut child = child;
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)?;
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)?;
    let mut status = 0;
    // SAFETY: plain libc call on our own child's pid; rusage is a valid out-pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        bail!("waiting for {:?} failed", cmd.get_program());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("the PyTorch anchor failed: {}", stderr.trim());
    }
    Ok((stdout, usage.ru_maxrss as f64 / 1024.0))
}

/// Times loading the full UCI HAR archive from `dir` (parse of all 22 members).
pub fn load_ucihar(dir: &Path) -> Result<Measurement> {
    let t0 = Instant::now();
    let ds = crate::data::ucihar::load(dir)?;
    let dt = t0.elapsed().as_secs_f64();
    Ok(Measurement {
        framework: "codats".into(),
        what: "load_ucihar".into(),
        kernels: None,
        batch: ds.n_windows(),
        sources: 0,
        threads: 0,
        ms_per_step: dt * 1e3,
        samples_per_s: ds.n_windows() as f64 / dt,
        gflops: None,
        conv_share: None,
        peak_rss_mib: None,
        phases_ms: None,
        rounds_ms: None,
    })
}

/// Default location of the anchor script, relative to the repository.
pub fn default_anchor() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/anchors/torch_codats_step.py")
}

/// One table row.
pub fn format_row(m: &Measurement) -> String {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    format!(
        "{:<8} {:<11} {:<7} {:>6} {:>7} {:>7} {:>10.1} {:>12.1} {:>8} {:>6} {:>9}",
        m.framework,
        m.what,
        m.kernels.clone().unwrap_or_else(|| "-".into()),
        m.batch,
        m.sources,
        m.threads,
        m.ms_per_step,
        m.samples_per_s,
        opt(m.gflops, &|v| format!("{v:.1}")),
        opt(m.conv_share, &|v| format!("{:.0}%", 100.0 * v)),
        opt(m.peak_rss_mib, &|v| format!("{v:.0}")),
    )
}

/// The table header matching [`format_row`].
pub fn header() -> String {
    format!(
        "{:<8} {:<11} {:<7} {:>6} {:>7} {:>7} {:>10} {:>12} {:>8} {:>6} {:>9}",
        "",
        "what",
        "kernels",
        "batch",
        "sources",
        "threads",
        "ms/step",
        "samples/s",
        "GFLOP/s",
        "conv",
        "peak MiB"
    )
}

/// Header of the `--phases` table.
pub fn phase_header() -> String {
    let names: Vec<String> = crate::profile::Phase::ALL
        .iter()
        .map(|p| format!("{:>14}", p.name()))
        .collect();
    format!(
        "{:<12} {:<7} {:>6} {:>7} {:>8} {}",
        "ms per step",
        "kernels",
        "batch",
        "threads",
        "step",
        names.join("")
    )
}

/// One `--phases` row (codats training steps only).
pub fn format_phases(m: &Measurement) -> Option<String> {
    let phases = m.phases_ms.as_ref()?;
    let cells: Vec<String> = crate::profile::Phase::ALL
        .iter()
        .map(|p| format!("{:>14.1}", phases.get(p.name()).copied().unwrap_or(0.0)))
        .collect();
    Some(format!(
        "{:<12} {:<7} {:>6} {:>7} {:>8.1} {}",
        m.what,
        m.kernels.clone().unwrap_or_else(|| "-".into()),
        m.batch,
        m.threads,
        m.ms_per_step,
        cells.join("")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(ms: f64, rss: f64) -> Measurement {
        Measurement {
            framework: "codats".into(),
            what: "train_step".into(),
            kernels: None,
            batch: 8,
            sources: 3,
            threads: 1,
            ms_per_step: ms,
            samples_per_s: 8e3 / ms,
            gflops: None,
            conv_share: None,
            peak_rss_mib: Some(rss),
            phases_ms: None,
            rounds_ms: None,
        }
    }

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn median_round_is_a_real_round_with_all_times_and_the_largest_peak() {
        let m = Measurement::median_of(vec![
            round(30.0, 100.0),
            round(10.0, 300.0),
            round(20.0, 200.0),
        ])
        .expect("three rounds");
        assert_eq!(m.ms_per_step, 20.0);
        assert_eq!(m.samples_per_s, 8e3 / 20.0);
        assert_eq!(m.rounds_ms, Some(vec![30.0, 10.0, 20.0]));
        assert_eq!(m.peak_rss_mib, Some(300.0));
        // even count: the faster of the middle two; one round: no per-round list
        let even = Measurement::median_of(vec![
            round(40.0, 1.0),
            round(10.0, 1.0),
            round(30.0, 1.0),
            round(20.0, 1.0),
        ]);
        assert_eq!(even.expect("four").ms_per_step, 20.0);
        assert_eq!(
            Measurement::median_of(vec![round(5.0, 1.0)])
                .expect("one")
                .rounds_ms,
            None
        );
        assert!(Measurement::median_of(Vec::new()).is_none());
    }
}
