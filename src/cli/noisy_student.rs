//! `codats ssl noisy-student`: Noisy Student's iterations (Xie et al. 2020) as ordinary run
//! directories under one parent:
//!
//! ```text
//! OUT/noisy_student.toml   the pipeline: iterations, teacher weights, iteration 0's config
//! OUT/iter-0/              the teacher: noisy_student without a teacher (labelled images, noised)
//! OUT/iter-1/              a student of iter-0's pseudo-labels (`[images.teacher]` = iter-0)
//! OUT/iter-2/              a student of iter-1's …
//! OUT/noisy_student.json   every iteration's test accuracy, written when all are done
//! ```
//!
//! `--resume` skips the finished iterations, continues the first unfinished one from its last
//! checkpoint and starts the rest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::ssl::{start_run, teacher_config, train_config, SslTrainArgs};
use super::train::resume_run;
use crate::config::{image_run_id, TrainConfig};
use crate::methods::ssl::noisy_student::NOISY_STUDENT;
use crate::methods::MethodKind;
use crate::train::result::RunResult;
use crate::train::run_lock::RunLock;

/// The pipeline file in the parent directory.
const PIPELINE: &str = "noisy_student.toml";
/// The summary written when every iteration is done.
const SUMMARY: &str = "noisy_student.json";

/// `codats ssl noisy-student`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example (MNIST, 10 labels per class, a teacher and two students):\n  \
codats ssl noisy-student --dataset mnist --labels-per-class 10 --iterations 2 --steps 1000 \\\n    \
--batch-size 16 --bn-momentum 0.1 --out runs/ns-mnist\n  \
codats ssl noisy-student --resume --out runs/ns-mnist     # after an interruption\n\n\
Every iteration trains with the same settings (the `codats ssl train` flags, method\n\
noisy_student and its --param values): iteration 0 on the labelled images alone, iteration k\n\
on them and iteration k-1's pseudo-labels of the unlabelled pool (--teacher-weights picks\n\
which of its weights label). --resume --iterations N extends a finished pipeline."
)]
pub struct NoisyStudentArgs {
    /// The settings of every iteration (as `codats ssl train`; --method is noisy_student).
    #[command(flatten)]
    pub train: SslTrainArgs,
    /// Students after the teacher (iteration 0); the paper iterates three times.
    #[arg(long, default_value_t = 2, value_parser = super::at_least_one)]
    pub iterations: usize,
}

/// `OUT/noisy_student.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pipeline {
    /// Students after the teacher.
    iterations: usize,
    /// The selection rule whose weights label the next iteration's pool.
    teacher_weights: String,
    /// Iteration 0's config; iteration k's adds `[images.teacher]` = iteration k − 1.
    config: TrainConfig,
}

/// Flags `--resume` accepts: the rest is the pipeline file's.
const RESUME_FLAGS: &[&str] = &[
    "--resume",
    "--out",
    "--quiet",
    "--data-dir",
    "--iterations",
    "--stop-after",
];

/// Iteration `k`'s run directory.
pub fn iteration_dir(parent: &Path, k: usize) -> PathBuf {
    parent.join(format!("iter-{k}"))
}

/// Runs `codats ssl noisy-student`.
pub fn run(a: NoisyStudentArgs) -> Result<()> {
    let t = &a.train;
    let given = |flag: &str| t.given.iter().any(|f| f == flag);
    if given("--teacher") {
        anyhow::bail!(
            "--teacher: the pipeline's teachers are its own iterations (train a student of \
             another run with `codats ssl train --method noisy_student --teacher RUN`)"
        );
    }
    let parent = match (&t.out, t.resume) {
        (Some(out), _) => out.clone(),
        (None, true) => anyhow::bail!("--resume needs --out PIPELINE_DIR"),
        (None, false) => {
            let (Some(dataset), Some(labels)) = (t.dataset, t.labels_per_class) else {
                anyhow::bail!(
                    "--dataset and --labels-per-class are required unless --resume is given"
                );
            };
            PathBuf::from("runs").join(image_run_id(
                dataset.as_str(),
                MethodKind::parse(NOISY_STUDENT.name).expect("registered"),
                labels,
                &[],
                t.seed,
            ))
        }
    };
    let pipeline_path = parent.join(PIPELINE);
    let pipeline = if t.resume {
        if let Some(flag) = t.given.iter().find(|f| !RESUME_FLAGS.contains(&f.as_str())) {
            anyhow::bail!(
                "{flag} cannot be changed on --resume; {} decides it",
                pipeline_path.display()
            );
        }
        if !pipeline_path.exists() {
            anyhow::bail!(
                "{} is not a Noisy Student pipeline (no {PIPELINE}); start one without --resume",
                parent.display()
            );
        }
        let text = std::fs::read_to_string(&pipeline_path)
            .with_context(|| format!("reading {}", pipeline_path.display()))?;
        let mut p: Pipeline = toml::from_str(&text)
            .with_context(|| format!("reading {}", pipeline_path.display()))?;
        if given("--iterations") && a.iterations != p.iterations {
            if a.iterations < p.iterations {
                anyhow::bail!(
                    "--iterations {}: the pipeline has {} already (it can be extended, not \
                     shortened)",
                    a.iterations,
                    p.iterations
                );
            }
            p.iterations = a.iterations;
            write_pipeline(&pipeline_path, &p)?;
        }
        p
    } else {
        if given("--method") && t.method.as_str() != NOISY_STUDENT.name {
            anyhow::bail!(
                "--method {}: every iteration of the pipeline is noisy_student",
                t.method
            );
        }
        if pipeline_path.exists() {
            anyhow::bail!(
                "{} holds a Noisy Student pipeline already: continue it with \
                 `codats ssl noisy-student --resume --out {}`",
                parent.display(),
                parent.display()
            );
        }
        // Checked here, so that a bad flag leaves nothing behind.
        let method = MethodKind::parse(NOISY_STUDENT.name).expect("registered");
        let config: TrainConfig = (*train_config(t, method, None)?).clone();
        crate::train::selection::check_name("--teacher-weights", &t.teacher_weights)
            .map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let p = Pipeline {
            iterations: a.iterations,
            teacher_weights: t.teacher_weights.clone(),
            config,
        };
        write_pipeline(&pipeline_path, &p)?;
        p
    };
    let _lock = RunLock::acquire(&parent)?;
    let mut results = Vec::new();
    for k in 0..=pipeline.iterations {
        let dir = iteration_dir(&parent, k);
        let result = if let Some(r) = finished(&dir)? {
            if !t.quiet {
                eprintln!("iteration {k}: finished ({})", dir.display());
            }
            Some(r)
        } else if dir.join("config.toml").exists() {
            resume_run(
                &dir,
                t.data_dir.as_deref(),
                (true, false),
                t.quiet,
                t.stop_after,
            )?
        } else {
            let mut cfg = pipeline.config.clone();
            if k > 0 {
                let teacher =
                    teacher_config(&iteration_dir(&parent, k - 1), &pipeline.teacher_weights)?;
                cfg.images.as_mut().expect("an image config").teacher = Some(teacher);
            }
            if let Some(d) = &t.data_dir {
                cfg.data_dir = Some(d.clone());
            }
            start_run(cfg.check()?, &dir, t.quiet, t.stop_after)?
        };
        let Some(result) = result else {
            eprintln!(
                "stopped early in iteration {k}; continue with `codats ssl noisy-student \
                 --resume --out {}`",
                parent.display()
            );
            return Ok(());
        };
        results.push(result);
    }
    let summary = summary(&parent, &results);
    let path = parent.join(SUMMARY);
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("Noisy Student, {} (test accuracy, %):", parent.display());
    println!("| iteration | teacher | last | best_target (oracle) |");
    println!("|---|---|---|---|");
    for it in summary["iterations"].as_array().expect("built above") {
        let pct = |r: &str| {
            it[r]
                .as_f64()
                .map(|v| format!("{:.2}", 100.0 * v))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "| {} | {} | {} | {} |",
            it["iteration"],
            it["teacher"].as_str().unwrap_or("-"),
            pct("last"),
            pct("best_target")
        );
    }
    println!("summary: {}", path.display());
    Ok(())
}

fn write_pipeline(path: &Path, p: &Pipeline) -> Result<()> {
    let text = toml::to_string(p).context("serialising the pipeline")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The result of the finished run in `dir`, or `None` when it has none yet.
fn finished(dir: &Path) -> Result<Option<RunResult>> {
    let path = dir.join("result.json");
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
    ))
}

/// Every iteration's held-out test accuracy under `last` and the oracle `best_target`.
fn summary(parent: &Path, results: &[RunResult]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = results
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let acc = |rule: &str| r.selection.get(rule).map(|s| s.target_test.accuracy);
            serde_json::json!({
                "iteration": k,
                "run": iteration_dir(parent, k).display().to_string(),
                "teacher": (k > 0).then(|| format!("iter-{}", k - 1)),
                "last": acc("last"),
                "best_target": acc("best_target"),
            })
        })
        .collect();
    serde_json::json!({ "pipeline": parent.display().to_string(), "iterations": rows })
}
