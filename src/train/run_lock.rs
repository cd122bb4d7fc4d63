//! One process per run directory: `codats train`, `train --resume` and `eval` hold
//! `RUN/codats.lock` (pid, host, start time) while they use the directory, so two processes
//! never write the same checkpoints and result.json.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::lockfile::{self, Holder};

/// Name of the lock file in a run directory.
pub const LOCK_FILE: &str = "codats.lock";

/// The lock of one run directory, held until dropped (also when the command fails).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    me: Holder,
}

impl RunLock {
    /// Takes the lock of `dir` (created if missing). A lock whose holder is proven dead (same
    /// host, pid gone or reused) is reclaimed with a note on stderr; a live holder is refused
    /// with a one-line error naming it.
    ///
    /// Two processes reclaiming the same stale lock at the same instant could both succeed;
    /// that needs a dead holder and two starts within microseconds, which we accept.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating run directory {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let me = Holder::me();
        for _ in 0..2 {
            match lockfile::try_create(&path, &me)? {
                Ok(()) => return Ok(Self { path, me }),
                Err(Some(holder)) => match holder.proven_dead() {
                    Some(why) => {
                        eprintln!(
                            "note: reclaimed the lock of {}: its holder (pid {} on {}) {why}",
                            dir.display(),
                            holder.pid,
                            holder.host
                        );
                        let _ = std::fs::remove_file(&path);
                    }
                    None => bail!(
                        "{} is in use by another codats process (pid {} on {}, since unix time {}); wait for it to end",
                        dir.display(),
                        holder.pid,
                        holder.host,
                        holder.started
                    ),
                },
                Err(None) => bail!(
                    "{} exists but cannot be read; remove it if no codats process is using {}",
                    path.display(),
                    dir.display()
                ),
            }
        }
        bail!(
            "{} was taken by another process while reclaiming it; try again",
            path.display()
        )
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only our own lock: a holder that reclaimed it meanwhile keeps theirs.
        if lockfile::read(&self.path)
            .is_some_and(|h| h.pid == self.me.pid && h.host == self.me.host)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_the_lock_goes_away_on_drop() {
        let dir = std::env::temp_dir().join(format!("codats-runlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lock = RunLock::acquire(&dir).unwrap();
        let err = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{} is in use by another codats process (pid {} on ",
                dir.display(),
                std::process::id()
            )),
            "{err}"
        );
        drop(lock);
        assert!(!dir.join(LOCK_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
