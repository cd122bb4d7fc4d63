//! Experiment sweeps: specs ([`spec`]), job expansion ([`expand`]), the sweep directory with
//! per-job state, the local worker pool ([`local`]) and Slurm job arrays ([`slurm`]).
//!
//! ```text
//! SWEEP/spec.toml              copy of the spec the jobs came from
//! SWEEP/jobs.json              the expanded job list (Plan); array task i runs jobs[i]
//! SWEEP/runs/<job id>/         one `codats train` / `codats ssl train` run directory per job
//!                              (done iff its result.json reads as a result; an unreadable one
//!                              is rerun)
//! SWEEP/state/<job id>.lock    a job being run: holder pid, host, Slurm ids (created atomically;
//!                              taken over once its holder is proven dead, or removed by
//!                              `codats sweep unlock`)
//! SWEEP/state/<job id>.failed  the last failed attempt: exit status, attempts, host, time
//! SWEEP/logs/<job id>.log      stdout + stderr of every attempt
//! SWEEP/slurm/                 sbatch scripts, array index lists, per-task Slurm logs
//! ```
//!
//! Each job is a child `codats train ... --out runs/<id>` process (`codats ssl train ...` for an
//! image job), so a crash or kill of one job cannot corrupt another; the trainer writes
//! result.json atomically at the very end.

pub mod expand;
pub mod local;
pub mod slurm;
pub mod spec;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use expand::{Job, Plan};

use crate::train::checkpoint::write_atomic;

pub use crate::lockfile::hostname;
use crate::lockfile::now;
/// Who holds a job: written to `state/<id>.lock` (a stale one, whose holder is proven dead, is
/// taken over: see [`crate::lockfile`]).
pub use crate::lockfile::Holder as LockInfo;

/// The last failed attempt of a job: written to `state/<id>.failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailInfo {
    /// How the child ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub status: String,
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Host it ran on.
    pub host: String,
    /// Unix time it ended.
    pub ended: u64,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// result.json exists and reads as a result.
    Done,
    /// result.json exists but does not read as a result (why): rerun like a failure.
    BadResult(String),
    /// A live process holds its lock.
    Running(LockInfo),
    /// The last attempt failed.
    Failed(FailInfo),
    /// Never run, or interrupted (its holder died): runs next time.
    Pending,
}

impl JobState {
    /// One word.
    pub fn word(&self) -> &'static str {
        match self {
            JobState::Done => "done",
            JobState::Running(_) => "running",
            JobState::Failed(_) | JobState::BadResult(_) => "failed",
            JobState::Pending => "pending",
        }
    }
}

/// A sweep directory.
#[derive(Debug, Clone)]
pub struct SweepDir {
    root: PathBuf,
    plan: Plan,
}

/// What [`SweepDir::execute`] did with a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It was already done; nothing ran.
    AlreadyDone,
    /// Another live process holds it; nothing ran.
    Busy(LockInfo),
    /// It ran and finished (result.json written).
    Succeeded,
    /// It ran and failed.
    Failed(FailInfo),
}

impl SweepDir {
    /// Creates (or re-opens) the sweep directory for `plan`, saving the spec text and jobs.json.
    /// Refuses when a job's existing run directory was made with other settings.
    pub fn prepare(root: &Path, spec_text: &str, plan: &Plan) -> Result<Self> {
        for sub in ["runs", "state", "logs"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        let dir = Self {
            root: root.to_path_buf(),
            plan: plan.clone(),
        };
        for job in &plan.jobs {
            let run = dir.run_dir(job);
            if run.join("config.toml").exists() {
                let saved = crate::train::checkpoint::read_config(&run)?;
                let mut want = job.train_config(saved.threads);
                want.code_version = saved.code_version.clone();
                // Not set by sweep specs: the loader options `codats train` records for the
                // dataset, and the kernel choice unless the spec gives `kernels`.
                want.data = saved.data.clone();
                if job.kernels.is_none() {
                    want.kernels = saved.kernels;
                }
                let want = want
                    .check()
                    .with_context(|| format!("checking job {}", job.id))?;
                if saved != want {
                    bail!(
                        "{} was made with other settings than job {} of this spec (was the spec changed?); \
                         use another --out, or delete that run directory to redo it",
                        run.display(),
                        job.id
                    );
                }
            }
        }
        write_atomic(&root.join("spec.toml"), spec_text.as_bytes())?;
        let mut json = serde_json::to_string_pretty(plan)?;
        json.push('\n');
        write_atomic(&root.join("jobs.json"), json.as_bytes())?;
        Ok(dir)
    }

    /// Opens an existing sweep directory (reads jobs.json).
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join("jobs.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not a sweep directory (no readable jobs.json)",
                root.display()
            )
        })?;
        let plan: Plan =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Self {
            root: root.to_path_buf(),
            plan,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The plan (jobs.json).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The run directory of a job.
    pub fn run_dir(&self, job: &Job) -> PathBuf {
        self.root.join("runs").join(&job.id)
    }

    /// The log file of a job.
    pub fn log_path(&self, job: &Job) -> PathBuf {
        self.root.join("logs").join(format!("{}.log", job.id))
    }

    fn lock_path(&self, job: &Job) -> PathBuf {
        self.root.join("state").join(format!("{}.lock", job.id))
    }

    fn failed_path(&self, job: &Job) -> PathBuf {
        self.root.join("state").join(format!("{}.failed", job.id))
    }

    fn read_lock(&self, job: &Job) -> Option<LockInfo> {
        let text = std::fs::read_to_string(self.lock_path(job)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn read_failed(&self, job: &Job) -> Option<FailInfo> {
        let text = std::fs::read_to_string(self.failed_path(job)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether the job's result.json exists (Some) and reads as a [`RunResult`] (Ok), else why not.
    fn result_check(&self, job: &Job) -> Option<std::result::Result<(), String>> {
        let path = self.run_dir(job).join("result.json");
        let bytes = std::fs::read(&path).ok()?;
        Some(
            serde_json::from_slice::<crate::train::result::RunResult>(&bytes)
                .map(|_| ())
                .map_err(|e| format!("result.json cannot be read ({e})")),
        )
    }

    fn is_done(&self, job: &Job) -> bool {
        matches!(self.result_check(job), Some(Ok(())))
    }

    /// Where a job stands.
    pub fn state(&self, job: &Job) -> JobState {
        let bad = match self.result_check(job) {
            Some(Ok(())) => return JobState::Done,
            Some(Err(why)) => Some(why),
            None => None,
        };
        if let Some(lock) = self.read_lock(job) {
            if lock.alive() {
                return JobState::Running(lock);
            }
        }
        match (bad, self.read_failed(job)) {
            (Some(why), _) => JobState::BadResult(why),
            (None, Some(f)) => JobState::Failed(f),
            (None, None) => JobState::Pending,
        }
    }

    /// The last `n` lines of a job's log.
    pub fn log_tail(&self, job: &Job, n: usize) -> Vec<String> {
        let text = std::fs::read_to_string(self.log_path(job)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    /// Takes the job's lock atomically (a complete file is hard-linked into place). A lock whose
    /// holder is proven dead, or that cannot be read, is taken over with a note on stderr.
    /// Returns the live holder when the job is busy.
    fn lock(&self, job: &Job) -> Result<std::result::Result<(), LockInfo>> {
        let path = self.lock_path(job);
        let me = LockInfo::me();
        for attempt in 0..2 {
            match crate::lockfile::try_create(&path, &me)? {
                Ok(()) => return Ok(Ok(())),
                Err(Some(holder)) if holder.alive() || attempt == 1 => return Ok(Err(holder)),
                Err(None) if attempt == 1 => return Ok(Err(me)),
                Err(holder) => {
                    if let Some(h) = holder {
                        eprintln!(
                            "note: job {}: reclaimed its lock from pid {} on {}, which is no longer running",
                            job.id, h.pid, h.host
                        );
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(Err(me))
    }

    /// Removes job locks by hand (`codats sweep unlock`): those of `ids`, or every one when
    /// `ids` is None. Returns one line per job saying what was removed.
    pub fn remove_locks(&self, ids: Option<&[String]>) -> Result<Vec<String>> {
        let jobs: Vec<&Job> = match ids {
            None => self.plan.jobs.iter().collect(),
            Some(ids) => ids
                .iter()
                .map(|id| {
                    self.plan
                        .jobs
                        .iter()
                        .find(|j| &j.id == id)
                        .with_context(|| format!("{id} is not a job of {}", self.root.display()))
                })
                .collect::<Result<_>>()?,
        };
        let mut lines = Vec::new();
        for job in jobs {
            let path = self.lock_path(job);
            if !path.exists() {
                if ids.is_some() {
                    lines.push(format!("{}: not locked", job.id));
                }
                continue;
            }
            let holder = crate::lockfile::read(&path);
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            lines.push(match holder {
                Some(h) => format!("unlocked {} (pid {} on {})", job.id, h.pid, h.host),
                None => format!("unlocked {} (its lock file was unreadable)", job.id),
            });
        }
        if lines.is_empty() {
            lines.push(format!("no job of {} is locked", self.root.display()));
        }
        Ok(lines)
    }

    /// A finished job whose runner was killed between its result and its unlock keeps that
    /// runner's lock: removed once its holder is proven dead (never another host's).
    pub(crate) fn remove_dead_lock(&self, job: &Job) {
        let Some(holder) = self.read_lock(job) else {
            return;
        };
        if let Some(why) = holder.proven_dead() {
            if std::fs::remove_file(self.lock_path(job)).is_ok() {
                eprintln!(
                    "note: job {} is done: removed the lock left by pid {} on {}, which {why}",
                    job.id, holder.pid, holder.host
                );
            }
        }
    }

    fn unlock(&self, job: &Job) {
        let _ = std::fs::remove_file(self.lock_path(job));
    }

    /// Runs one job to completion with `exe` (the codats binary) and `threads` CPU threads:
    /// skips it when done or held by a live process, resumes an interrupted run from its last
    /// checkpoint, and records a failure (exit status, log) otherwise. Shared by the local pool
    /// and Slurm array tasks.
    pub fn execute(&self, job: &Job, exe: &Path, threads: usize) -> Result<Outcome> {
        if self.is_done(job) {
            self.remove_dead_lock(job);
            return Ok(Outcome::AlreadyDone);
        }
        if let Err(holder) = self.lock(job)? {
            return Ok(Outcome::Busy(holder));
        }
        let outcome = self.execute_locked(job, exe, threads);
        self.unlock(job);
        outcome
    }

    fn execute_locked(&self, job: &Job, exe: &Path, threads: usize) -> Result<Outcome> {
        // Re-check under the lock: another process may have finished it meanwhile.
        let run = self.run_dir(job);
        if self.is_done(job) {
            return Ok(Outcome::AlreadyDone);
        }
        let resumable = ["resume", "resume.old"]
            .iter()
            .any(|d| run.join("checkpoints").join(d).join("state.json").is_file());
        if !resumable && run.exists() {
            // Started but killed before its first checkpoint: start over.
            std::fs::remove_dir_all(&run).with_context(|| format!("removing {}", run.display()))?;
        }
        // `codats [ssl] train --resume` takes the settings from the run's config.toml and
        // refuses flags that would change them.
        let mut args = if resumable {
            job.resume_args()
        } else {
            let mut a = job.train_args();
            a.extend(["--threads".into(), threads.to_string()]);
            a
        };
        args.extend(["--quiet".into(), "--out".into(), run.display().to_string()]);
        let previous = self.read_failed(job);
        let log_path = self.log_path(job);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(
            log,
            "=== {} attempt {} on {} (pid {}{}) at unix time {}: codats {}",
            job.id,
            previous.as_ref().map(|f| f.attempts + 1).unwrap_or(1),
            hostname(),
            std::process::id(),
            std::env::var("SLURM_JOB_ID")
                .map(|j| format!(", slurm job {j}"))
                .unwrap_or_default(),
            now(),
            args.join(" ")
        )?;
        log.flush()?;
        crate::fault::point("sweep-job-start");
        let mut cmd = Command::new(exe);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; the child dies when its parent (thread) dies,
            // so killing the sweep never leaves orphan trainers writing into run directories.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let status = cmd
            .status()
            .with_context(|| format!("starting {}", exe.display()))?;
        crate::fault::point("sweep-job-end");
        if status.success() && self.is_done(job) {
            let _ = std::fs::remove_file(self.failed_path(job));
            writeln!(log, "=== {} done", job.id)?;
            return Ok(Outcome::Succeeded);
        }
        let status_text = {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(0), _) => "exit status: 0 but no readable result.json".to_string(),
                (Some(c), _) => format!("exit status: {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                _ => status.to_string(),
            }
        };
        let fail = FailInfo {
            status: status_text,
            code: status.code(),
            attempts: previous.map(|f| f.attempts).unwrap_or(0) + 1,
            host: hostname(),
            ended: now(),
        };
        writeln!(log, "=== {} failed: {}", job.id, fail.status)?;
        write_atomic(&self.failed_path(job), &serde_json::to_vec_pretty(&fail)?)?;
        Ok(Outcome::Failed(fail))
    }

    /// Counts per state and the jobs in each.
    pub fn states(&self) -> Vec<(usize, JobState)> {
        self.plan
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (i, self.state(j)))
            .collect()
    }

    /// The `codats sweep status` text: counts, running jobs, failed jobs with their last log lines.
    pub fn status_report(&self, tail: usize) -> String {
        let states = self.states();
        let count = |w: &str| states.iter().filter(|(_, s)| s.word() == w).count();
        let mut out = format!(
            "sweep {} ({}): {} jobs: {} done, {} running, {} failed, {} pending\n",
            self.plan.name,
            self.root.display(),
            states.len(),
            count("done"),
            count("running"),
            count("failed"),
            count("pending")
        );
        for (i, s) in &states {
            let job = &self.plan.jobs[*i];
            match s {
                JobState::Running(l) => {
                    out.push_str(&format!(
                        "running [{i}] {} on {} (pid {}{}) since unix time {}\n",
                        job.id,
                        l.host,
                        l.pid,
                        l.slurm_job_id
                            .as_ref()
                            .map(|j| format!(", slurm job {j}"))
                            .unwrap_or_default(),
                        l.started
                    ));
                }
                JobState::Failed(f) => {
                    out.push_str(&format!(
                        "failed  [{i}] {}: {} after {} attempt(s) on {}; log {}\n",
                        job.id,
                        f.status,
                        f.attempts,
                        f.host,
                        self.log_path(job).display()
                    ));
                    for l in self.log_tail(job, tail) {
                        out.push_str(&format!("    | {l}\n"));
                    }
                }
                JobState::BadResult(why) => {
                    out.push_str(&format!(
                        "failed  [{i}] {}: {why}; `codats sweep run` reruns it\n",
                        job.id
                    ));
                }
                _ => {}
            }
        }
        out
    }
}

/// Reads, checks and expands a spec file.
pub fn load_plan(path: &Path, only: Option<&[String]>) -> Result<(String, expand::Plan)> {
    let (text, raw) = spec::read(path)?;
    let src = spec::Source {
        file: path.display().to_string(),
        text: &text,
    };
    let mut ids = |d, dir: Option<&Path>| expand::dataset_domain_ids(d, dir);
    let plan = expand::expand(&src, &raw, only, &mut ids)?;
    Ok((text, plan))
}
