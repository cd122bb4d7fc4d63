//! Fault injection for the crash-anywhere tests (`tests/crash_anywhere.rs`), hidden from users:
//! with `CODATS_FAULT=<point>:<n>` in the environment, the process kills itself with SIGKILL
//! (as `kill -9` would: no destructors, no flushing) the `n`-th time (from 1) it reaches the
//! named point. Unset, a point costs one load of an initialised `OnceLock`.
//!
//! | point | where |
//! |---|---|
//! | `step` | after a training step (and its evaluation and checkpoint, if due) |
//! | `checkpoint-model` | checkpoint: `resume.tmp/model.safetensors` written |
//! | `checkpoint-optimiser` | checkpoint: `resume.tmp/optimiser.safetensors` written |
//! | `checkpoint-state` | checkpoint: `resume.tmp/state.json` written, no manifest yet |
//! | `checkpoint-manifest` | checkpoint: `resume.tmp/` complete, not yet renamed |
//! | `checkpoint-swap` | checkpoint: `resume/` renamed to `resume.old/`, `resume.tmp/` not yet in place |
//! | `checkpoint-done` | checkpoint: the new `resume/` in place, `resume.old/` not yet removed |
//! | `weights-tmp` | `checkpoints/<rule>.safetensors.tmp` written, not yet renamed |
//! | `atomic-tmp` | a file written through a temporary (result.json, …), not yet renamed |
//! | `metrics-row` | a metrics.csv row written (to its buffer) |
//! | `sweep-job-start` | sweep runner: a job locked, its trainer not yet started |
//! | `sweep-job-end` | sweep runner: a job's trainer ended, its outcome not yet recorded |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a fault point.
pub const ENV: &str = "CODATS_FAULT";

/// The armed point and count, read once.
fn armed() -> &'static Option<(String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let (point, n) = v.rsplit_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    })
}

/// Marks fault point `point`: kills the process when it is the armed point reached for the
/// armed time.
#[inline]
pub fn point(point: &str) {
    if let Some((p, n)) = armed() {
        hit(point, p, *n);
    }
}

#[cold]
fn hit(point: &str, armed: &str, n: u64) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    if point == armed && HITS.fetch_add(1, Ordering::SeqCst) + 1 == n {
        // SAFETY: kill(2) of our own pid; the process ends here.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
