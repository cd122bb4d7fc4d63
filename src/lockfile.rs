//! Lock files that say who holds something (a run directory, a sweep job): pid, host, start
//! time, Slurm job id. A lock is created atomically (a complete file hard-linked into place,
//! which fails when one exists), and a lock whose holder is proven dead may be reclaimed.
//!
//! "Proven dead" is decided on the holder's own host only: its pid no longer runs (or is a
//! zombie), or the process now behind that pid started after the lock was written (the pid
//! was reused). A lock of another host is left alone unless its Slurm job is known to have
//! ended ([`Holder::alive`]).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Who holds a lock: the content of a lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id of the holder.
    pub pid: u32,
    /// Host name of the holder.
    pub host: String,
    /// Unix time the lock was taken.
    pub started: u64,
    /// `SLURM_JOB_ID` when run under Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job_id: Option<String>,
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `pid` runs on this host (a zombie counts as dead: a killed holder whose parent does
/// not reap it).
pub fn pid_alive(pid: u32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        return !matches!(state, Some('Z') | Some('X') | None);
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Unix time (seconds, rounded down) at which process `pid` started, from /proc (Linux only).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is field 3, starttime field 22 (clock ticks after boot).
    let rest = stat.rsplit_once(')')?.1;
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| boot + ticks / hz as u64)
}

impl Holder {
    /// The current process, now.
    pub fn me() -> Self {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            started: now(),
            slurm_job_id: std::env::var("SLURM_JOB_ID").ok(),
        }
    }

    /// Why the holder is known to be dead, or None when it may still run. Only a holder on
    /// this host can be proven dead by its pid: it no longer runs, or the process behind the
    /// pid started after the lock was taken (so it is not the holder; the 1 s margin covers
    /// rounding of both times).
    pub fn proven_dead(&self) -> Option<&'static str> {
        if self.host != hostname() {
            return None;
        }
        if !pid_alive(self.pid) {
            return Some("is no longer running");
        }
        match process_start_time(self.pid) {
            Some(t) if t > self.started + 1 => Some("is no longer running (its pid was reused)"),
            _ => None,
        }
    }

    /// Whether the holder may still run: on this host by [`Holder::proven_dead`], elsewhere by
    /// `squeue` for a Slurm job (an empty answer: it ended), else assumed alive.
    pub fn alive(&self) -> bool {
        if self.host == hostname() {
            return self.proven_dead().is_none();
        }
        if let Some(id) = &self.slurm_job_id {
            if let Ok(out) = Command::new("squeue")
                .args(["-h", "-j", id, "-o", "%T"])
                .stderr(Stdio::null())
                .output()
            {
                if out.status.success() {
                    return !String::from_utf8_lossy(&out.stdout).trim().is_empty();
                }
            }
        }
        true
    }
}

/// Reads a lock file; None when it is missing or unreadable.
pub fn read(path: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Creates the lock file `path` holding `me`, atomically: Ok(Ok(())) when taken, Ok(Err(h))
/// when it already exists (h: its holder, None when unreadable).
pub fn try_create(path: &Path, me: &Holder) -> Result<std::result::Result<(), Option<Holder>>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.{}.tmp", me.pid));
    std::fs::write(&tmp, serde_json::to_vec(me)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Err(read(path))),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_started_before_now() {
        let me = Holder::me();
        assert_eq!(me.proven_dead(), None);
        assert!(me.alive());
        let start = process_start_time(me.pid).expect("linux /proc");
        assert!(start <= now(), "{start}");
    }

    #[test]
    fn a_reused_pid_or_a_dead_one_is_proven_dead_and_another_host_never() {
        let mut h = Holder::me();
        h.started = 1000; // long before this process started: its pid was reused since
        assert_eq!(
            h.proven_dead(),
            Some("is no longer running (its pid was reused)")
        );
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        h = Holder {
            pid,
            ..Holder::me()
        };
        assert_eq!(h.proven_dead(), Some("is no longer running"));
        h.host = "some-other-host.invalid".into();
        assert_eq!(h.proven_dead(), None);
        assert!(
            h.alive(),
            "another host's lock without Slurm is assumed alive"
        );
    }
}
