//! `codats sweep ...`: plan, run locally, submit to Slurm, status, and one job (Slurm's task).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::sweep::expand;
use crate::sweep::slurm::{self, SlurmOptions};
use crate::sweep::spec::SlurmSettings;
use crate::sweep::{load_plan, local, Outcome, SweepDir};

/// `codats sweep ...`.
#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Check a spec and list its jobs without running anything.
    Plan {
        /// Sweep spec (experiments/*.toml).
        spec: PathBuf,
        /// Keep only these datasets' problems (comma separated).
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
        /// Print every job's id.
        #[arg(long)]
        jobs: bool,
    },
    /// Run a sweep on this machine: finished jobs are skipped, failed and interrupted ones rerun.
    Run(RunArgs),
    /// Done / running / failed / pending jobs of a sweep directory, with failed jobs' last log lines.
    Status {
        /// Sweep directory.
        dir: PathBuf,
        /// Log lines to show per failed job.
        #[arg(long, default_value_t = 8)]
        lines: usize,
    },
    /// Remove job locks by hand (jobs whose holder died where it cannot be proven, e.g. on
    /// another host); prints each removed lock's job, pid and host.
    Unlock {
        /// Sweep directory.
        dir: PathBuf,
        /// Jobs to unlock (ids as in `codats sweep plan --jobs`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        jobs: Vec<String>,
        /// Unlock every job.
        #[arg(long)]
        all: bool,
    },
    /// Write an sbatch job-array script (one task per unfinished job) and submit it.
    Slurm(SlurmArgs),
    /// Run one job of a sweep directory (what each Slurm array task calls).
    #[command(hide = true)]
    RunJob {
        /// Sweep directory.
        dir: PathBuf,
        /// Job index in jobs.json.
        #[arg(long, conflicts_with_all = ["index_file", "task"])]
        index: Option<usize>,
        /// File of job indices, one per line (with --task).
        #[arg(long, requires = "task")]
        index_file: Option<PathBuf>,
        /// Line (0-based) of --index-file: the array task id.
        #[arg(long, requires = "index_file")]
        task: Option<usize>,
        /// CPU threads for the job.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// `codats sweep run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  codats sweep run experiments/smoke.toml --out sweeps/smoke --jobs 2\n  codats sweep status sweeps/smoke\n  codats report sweeps/smoke"
)]
pub struct RunArgs {
    /// Sweep spec (experiments/*.toml).
    pub spec: PathBuf,
    /// Sweep directory (created; re-running the same spec there resumes).
    #[arg(long)]
    pub out: PathBuf,
    /// Jobs run at the same time.
    #[arg(long, default_value_t = 1, value_parser = crate::cli::at_least_one)]
    pub jobs: usize,
    /// CPU threads per job (default: the spec's `threads`, else cores / --jobs).
    #[arg(long, value_parser = crate::cli::at_least_one)]
    pub threads: Option<usize>,
    /// Keep only these datasets' problems (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Only one summary line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `codats sweep slurm`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  codats sweep slurm experiments/paper_single_source.toml --out /scratch/codats/paper \\\n      --partition cpu --time 12:00:00 --cpus 4 --mem 8G\n  codats sweep status /scratch/codats/paper"
)]
pub struct SlurmArgs {
    /// Sweep spec (experiments/*.toml).
    pub spec: PathBuf,
    /// Sweep directory (on a file system the compute nodes share).
    #[arg(long)]
    pub out: PathBuf,
    /// Partition (default: the spec's [slurm] partition, else the cluster's default).
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per task, e.g. 04:00:00.
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per task (also each job's --threads).
    #[arg(long)]
    pub cpus: Option<usize>,
    /// Memory per task, e.g. 8G.
    #[arg(long)]
    pub mem: Option<String>,
    /// At most this many tasks at once.
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Tasks per array script (keep below the cluster's MaxArraySize).
    #[arg(long, default_value_t = slurm::DEFAULT_MAX_ARRAY)]
    pub max_array: usize,
    /// Keep only these datasets' problems (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Write the scripts and print the sbatch commands without submitting.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until every submitted task has ended (sbatch --wait).
    #[arg(long)]
    pub wait: bool,
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("locating the codats binary")
}

/// Runs a `codats sweep` subcommand.
pub fn run(c: SweepCommand) -> Result<()> {
    match c {
        SweepCommand::Plan { spec, only, jobs } => plan(&spec, only.as_deref(), jobs),
        SweepCommand::Run(a) => run_local(a),
        SweepCommand::Status { dir, lines } => {
            let d = SweepDir::open(&dir)?;
            print!("{}", d.status_report(lines));
            Ok(())
        }
        SweepCommand::Unlock { dir, jobs, all } => {
            let d = SweepDir::open(&dir)?;
            for line in d.remove_locks((!all).then_some(jobs.as_slice()))? {
                println!("{line}");
            }
            Ok(())
        }
        SweepCommand::Slurm(a) => submit(a),
        SweepCommand::RunJob {
            dir,
            index,
            index_file,
            task,
            threads,
        } => run_job(&dir, index, index_file, task, threads),
    }
}

/// `codats sweep plan`.
fn plan(spec: &std::path::Path, only: Option<&[String]>, jobs: bool) -> Result<()> {
    let (_, plan) = load_plan(spec, only)?;
    println!("sweep {}: {} jobs", plan.name, plan.jobs.len());
    for ((d, m), n) in expand::summarize(&plan) {
        println!("  {d:<10} {m:<28} {n:>5}");
    }
    if jobs {
        for (i, j) in plan.jobs.iter().enumerate() {
            println!("{i}\t{}", j.id);
        }
    }
    Ok(())
}

/// `codats sweep run`.
fn run_local(a: RunArgs) -> Result<()> {
    let (text, plan) = load_plan(&a.spec, a.only.as_deref())?;
    let dir = SweepDir::prepare(&a.out, &text, &plan)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let workers = a.jobs.max(1);
    let threads = a
        .threads
        .or(plan.threads)
        .unwrap_or((cores / workers).max(1))
        .max(1);
    let s = local::run(&dir, &exe()?, workers, threads, a.quiet)?;
    println!(
        "sweep {}: {} jobs: {} ran now, {} were already done, {} failed, {} busy elsewhere",
        plan.name,
        plan.jobs.len(),
        s.succeeded,
        s.skipped,
        s.failed.len(),
        s.busy
    );
    if !s.failed.is_empty() {
        bail!(
            "{} job(s) failed: {}; see `codats sweep status {}`, fix the cause and run the same command again",
            s.failed.len(),
            s.failed.join(", "),
            a.out.display()
        );
    }
    Ok(())
}

/// `codats sweep slurm`.
fn submit(a: SlurmArgs) -> Result<()> {
    let (text, plan) = load_plan(&a.spec, a.only.as_deref())?;
    let flags = SlurmSettings {
        partition: a.partition,
        time: a.time,
        cpus_per_task: a.cpus,
        mem: a.mem,
        max_parallel: a.max_parallel,
        extra: Vec::new(),
    };
    let opts = SlurmOptions::resolve(&plan.slurm, &flags, a.max_array)?;
    let dir = SweepDir::prepare(&a.out, &text, &plan)?;
    let todo: Vec<usize> = dir
        .states()
        .into_iter()
        .filter(|(_, s)| {
            matches!(
                s,
                crate::sweep::JobState::Pending
                    | crate::sweep::JobState::Failed(_)
                    | crate::sweep::JobState::BadResult(_)
            )
        })
        .map(|(i, _)| i)
        .collect();
    if todo.is_empty() {
        println!(
            "sweep {}: nothing to submit (every job is done or running)",
            plan.name
        );
        return Ok(());
    }
    let scripts = slurm::write_scripts(&dir, &exe()?, &opts, &todo)?;
    for s in &scripts {
        if a.dry_run {
            println!(
                "wrote {} ({} tasks); submit with: sbatch {}",
                s.script.display(),
                s.tasks,
                s.script.display()
            );
            continue;
        }
        let id = slurm::submit(s, a.wait)?;
        println!(
            "submitted {} as Slurm job {id} ({} array tasks); logs in {}",
            s.script.display(),
            s.tasks,
            dir.path().join("slurm/logs").display()
        );
    }
    if a.wait && !a.dry_run {
        print!("{}", dir.status_report(8));
        let failed = dir
            .states()
            .iter()
            .filter(|(_, s)| matches!(s, crate::sweep::JobState::Failed(_)))
            .count();
        if failed > 0 {
            bail!("{failed} job(s) failed under Slurm (see above); resubmit with the same command to retry them");
        }
    }
    Ok(())
}

/// `codats sweep run-job` (one Slurm array task).
fn run_job(
    dir: &std::path::Path,
    index: Option<usize>,
    index_file: Option<PathBuf>,
    task: Option<usize>,
    threads: usize,
) -> Result<()> {
    let d = SweepDir::open(dir)?;
    let i = match (index, index_file, task) {
        (Some(i), _, _) => i,
        (None, Some(f), Some(t)) => slurm::index_of_task(&f, t)?,
        _ => bail!("give --index N, or --index-file FILE with --task T"),
    };
    let job = d.plan().jobs.get(i).with_context(|| {
        format!(
            "job index {i} is beyond the {} jobs of {}",
            d.plan().jobs.len(),
            dir.display()
        )
    })?;
    match d.execute(job, &exe()?, threads)? {
        Outcome::AlreadyDone => println!("{}: already done", job.id),
        Outcome::Succeeded => println!("{}: done", job.id),
        Outcome::Busy(h) => {
            println!("{}: held by pid {} on {}; skipped", job.id, h.pid, h.host)
        }
        Outcome::Failed(f) => bail!(
            "{} failed ({}); log {}",
            job.id,
            f.status,
            d.log_path(job).display()
        ),
    }
    Ok(())
}
