//! The local executor: a pool of worker threads, each running one job (a child process) at a time.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;

use super::{JobState, Outcome, SweepDir};

/// What a local sweep did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Jobs that were already done.
    pub skipped: usize,
    /// Jobs run to completion now.
    pub succeeded: usize,
    /// Jobs that failed now.
    pub failed: Vec<String>,
    /// Jobs held by another live process.
    pub busy: usize,
}

/// Runs every job that is not done on `workers` threads with `threads` CPU threads each, using
/// `exe` as the codats binary. Failed jobs are retried (once per call). Prints a line per job.
pub fn run(
    dir: &SweepDir,
    exe: &Path,
    workers: usize,
    threads: usize,
    quiet: bool,
) -> Result<Summary> {
    let jobs = &dir.plan().jobs;
    let total = jobs.len();
    let mut summary = Summary::default();
    let mut queue = VecDeque::new();
    for (i, job) in jobs.iter().enumerate() {
        match dir.state(job) {
            JobState::Done => {
                dir.remove_dead_lock(job);
                summary.skipped += 1
            }
            _ => queue.push_back(i),
        }
    }
    if !quiet {
        eprintln!(
            "sweep {}: {total} jobs, {} done, {} to run on {} worker(s) x {} thread(s)",
            dir.plan().name,
            summary.skipped,
            queue.len(),
            workers,
            threads
        );
    }
    let queue = Mutex::new(queue);
    let summary = Mutex::new(summary);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let next = queue.lock().expect("queue lock").pop_front();
                let Some(i) = next else { break };
                let job = &jobs[i];
                let start = Instant::now();
                if !quiet {
                    eprintln!("[{}/{total}] start {}", i + 1, job.id);
                }
                match dir.execute(job, exe, threads) {
                    Ok(outcome) => {
                        let secs = start.elapsed().as_secs_f64();
                        let mut sum = summary.lock().expect("summary lock");
                        let line = match &outcome {
                            Outcome::AlreadyDone => {
                                sum.skipped += 1;
                                "already done".to_string()
                            }
                            Outcome::Busy(h) => {
                                sum.busy += 1;
                                format!("busy: held by pid {} on {}", h.pid, h.host)
                            }
                            Outcome::Succeeded => {
                                sum.succeeded += 1;
                                format!("done in {secs:.0} s")
                            }
                            Outcome::Failed(f) => {
                                sum.failed.push(job.id.clone());
                                format!(
                                    "FAILED ({}) after {secs:.0} s; log {}",
                                    f.status,
                                    dir.log_path(job).display()
                                )
                            }
                        };
                        if !quiet {
                            eprintln!("[{}/{total}] {} {line}", i + 1, job.id);
                        }
                    }
                    Err(e) => {
                        let mut fe = first_error.lock().expect("error lock");
                        if fe.is_none() {
                            *fe = Some(e.context(format!("running job {}", job.id)));
                        }
                        queue.lock().expect("queue lock").clear();
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    Ok(summary.into_inner().expect("summary lock"))
}
