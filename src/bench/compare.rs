//! The paired comparison of `codats bench`: each configuration's training step timed in its
//! own process beside the PyTorch anchor, in alternating rounds, then inference, GEMM and the
//! UCI HAR load; printed as a table or JSON lines.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{Measurement, One, What};
use crate::data::registry::DatasetName;
use crate::nn::Kernels;

/// What `codats bench` measures (its flags).
#[derive(Debug, Clone)]
pub struct Compare {
    /// Total samples per step (each measured).
    pub batch: Vec<usize>,
    /// Source domains.
    pub sources: usize,
    /// Thread counts (each measured).
    pub threads: Vec<usize>,
    /// Timed steps per configuration.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// FCN implementations.
    pub kernels: Vec<Kernels>,
    /// JSON lines instead of a table.
    pub json: bool,
    /// Python with torch: also run the anchor.
    pub torch_python: Option<PathBuf>,
    /// The anchor script.
    pub anchor: PathBuf,
    /// UCI HAR folder for the load timing.
    pub data_dir: Option<PathBuf>,
    /// Skip inference, GEMM and load.
    pub train_only: bool,
    /// Paired rounds per configuration.
    pub rounds: u32,
    /// Print where the step's time goes.
    pub phases: bool,
}

/// Runs the comparison and prints it.
pub fn run(a: &Compare) -> Result<()> {
    let exe = std::env::current_exe().context("locating the codats executable")?;
    let emit = |m: &Measurement| -> Result<()> {
        if a.json {
            println!("{}", serde_json::to_string(m)?);
        } else {
            println!("{}", super::format_row(m));
        }
        Ok(())
    };
    if !a.json {
        println!("{}", super::header());
    }
    let one = |what, batch, threads, kernels| one(a, what, batch, threads, kernels);
    let mut ratios = Vec::new();
    let mut profiled = Vec::new();
    for &batch in &a.batch {
        for &threads in &a.threads {
            let (ours, theirs, paired) = paired_rounds(a, &exe, batch, threads)?;
            let mut fast = None;
            for (m, &k) in ours.into_iter().zip(&a.kernels) {
                emit(&m)?;
                profiled.push(m.clone());
                if k == Kernels::Fast {
                    fast = Some(m);
                }
            }
            if let Some(t) = theirs {
                emit(&t)?;
                if let (Some(f), Some(ratio)) = (&fast, super::median(&paired)) {
                    ratios.push(Ratio {
                        batch,
                        threads,
                        ratio,
                        rounds: paired,
                        ours_mib: f.peak_rss_mib,
                        theirs_mib: t.peak_rss_mib,
                    });
                }
            }
        }
    }
    if !a.train_only {
        let max_threads = a.threads.iter().copied().max().unwrap_or(1);
        for &threads in &a.threads {
            emit(&super::spawn_one(
                &exe,
                one(What::Gemm, 2048, threads, Kernels::Fast),
            )?)?;
        }
        for &batch in &a.batch {
            emit(&super::spawn_one(
                &exe,
                one(What::Inference, batch, max_threads, Kernels::Fast),
            )?)?;
        }
        let dir = crate::data::registry::dataset_dir(DatasetName::Ucihar, a.data_dir.as_deref());
        match super::load_ucihar(&dir) {
            Ok(m) => emit(&m)?,
            Err(e) => eprintln!("(UCI HAR load not timed: {e})"),
        }
    }
    if a.phases && !a.json {
        println!("\n{}", super::phase_header());
        for m in &profiled {
            if let Some(row) = super::format_phases(m) {
                println!("{row}");
            }
        }
    }
    for r in ratios {
        println!("{}", r.line(a.json));
    }
    Ok(())
}

/// One configuration's codats/PyTorch throughput ratio.
struct Ratio {
    batch: usize,
    threads: usize,
    /// Median of the rounds' ratios.
    ratio: f64,
    /// Each round's back-to-back ratio.
    rounds: Vec<f64>,
    ours_mib: Option<f64>,
    theirs_mib: Option<f64>,
}

impl Ratio {
    /// Its line of output (JSON or text).
    fn line(&self, json: bool) -> String {
        let (batch, threads, r) = (self.batch, self.threads, self.ratio);
        if json {
            return serde_json::json!({"framework": "ratio", "batch": batch, "threads": threads,
                "codats_over_pytorch_samples_per_s": r, "rounds": self.rounds,
                "codats_peak_rss_mib": self.ours_mib, "pytorch_peak_rss_mib": self.theirs_mib})
            .to_string();
        }
        let each: Vec<String> = self.rounds.iter().map(|v| format!("{v:.2}")).collect();
        let how = if self.rounds.len() > 1 {
            format!(
                " (median of {} back-to-back rounds: {})",
                self.rounds.len(),
                each.join(", ")
            )
        } else {
            String::new()
        };
        format!("batch {batch}, {threads} threads: codats is {r:.2}x PyTorch's samples/s{how}")
    }
}

/// The training step of one (batch, threads) configuration over `a.rounds` rounds, codats
/// (each kernel choice) and PyTorch in turn, who goes first alternating: the median round of
/// each kernel choice, PyTorch's median round, and each round's fast/PyTorch ratio.
fn paired_rounds(
    a: &Compare,
    exe: &std::path::Path,
    batch: usize,
    threads: usize,
) -> Result<(Vec<Measurement>, Option<Measurement>, Vec<f64>)> {
    let mut ours: Vec<Vec<Measurement>> = vec![Vec::new(); a.kernels.len()];
    let mut theirs = Vec::new();
    let mut paired = Vec::new();
    let torch = |theirs: &mut Vec<Measurement>| -> Result<Option<f64>> {
        let Some(py) = &a.torch_python else {
            return Ok(None);
        };
        let t = super::run_torch(py, &a.anchor, batch, a.sources, threads, a.steps)?;
        let s = t.samples_per_s;
        theirs.push(t);
        Ok(Some(s))
    };
    for round in 0..a.rounds {
        let torch_first = round % 2 == 1;
        let mut t = if torch_first {
            torch(&mut theirs)?
        } else {
            None
        };
        let mut fast = None;
        for (i, &k) in a.kernels.iter().enumerate() {
            let m = super::spawn_one(exe, one(a, What::TrainStep, batch, threads, k))?;
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
    let ours = ours
        .into_iter()
        .filter_map(Measurement::median_of)
        .collect();
    Ok((ours, Measurement::median_of(theirs), paired))
}

/// The child-process configuration of one measurement.
fn one(a: &Compare, what: What, batch: usize, threads: usize, kernels: Kernels) -> One {
    One {
        what,
        batch,
        sources: a.sources,
        threads,
        steps: a.steps,
        warmup: a.warmup,
        kernels,
    }
}
