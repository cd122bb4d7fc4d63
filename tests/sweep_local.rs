//! The local executor for real: every job a child `codats train`; re-running skips finished jobs;
//! killing the sweep loses nothing finished, leaves no half-written result and resumes the
//! interrupted job; failed jobs are reported with their log and retried.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

mod common;

fn codats(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(args)
        .env("CODATS_DATA_DIR", "/nonexistent-codats-data")
        .output()
        .expect("run codats")
}

fn ok(args: &[&str]) -> String {
    common::succeeded(codats(args), &args)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml")
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn results(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("result.json"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// No `*.tmp` file anywhere under `dir` next to a result.
fn assert_no_partial_results(dir: &Path) {
    for e in std::fs::read_dir(dir.join("runs")).expect("runs").flatten() {
        for f in std::fs::read_dir(e.path()).expect("run dir").flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with("result.json."),
                "half-written result {}",
                f.path().display()
            );
        }
        if let Ok(text) = std::fs::read_to_string(e.path().join("result.json")) {
            serde_json::from_str::<serde_json::Value>(&text).expect("result.json is complete JSON");
        }
    }
}

#[test]
fn run_status_and_rerun_skips_finished_jobs() {
    let tmp = common::TempDir::new("sweep-local-run");
    let dir = tmp.path().join("smoke");
    let out = ok(&[
        "sweep",
        "run",
        s(&smoke()),
        "--out",
        s(&dir),
        "--jobs",
        "2",
        "--threads",
        "1",
    ]);
    assert!(
        out.contains("4 jobs: 4 ran now, 0 were already done, 0 failed"),
        "{out}"
    );
    let done = results(&dir);
    assert_eq!(done.len(), 4);
    for p in &done {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json");
        assert_eq!(r["steps"], 20);
        for rule in ["last", "best_source", "best_target"] {
            let acc = r["selection"][rule]["target_test"]["accuracy"]
                .as_f64()
                .expect("accuracy");
            assert!((0.0..=1.0).contains(&acc));
        }
    }
    assert!(dir.join("spec.toml").is_file() && dir.join("jobs.json").is_file());
    let status = ok(&["sweep", "status", s(&dir)]);
    assert!(
        status.contains("4 jobs: 4 done, 0 running, 0 failed, 0 pending"),
        "{status}"
    );
    let before: Vec<SystemTime> = done.iter().map(|p| mtime(p)).collect();
    let again = ok(&["sweep", "run", s(&smoke()), "--out", s(&dir), "--jobs", "2"]);
    assert!(
        again.contains("4 jobs: 0 ran now, 4 were already done"),
        "{again}"
    );
    let after: Vec<SystemTime> = done.iter().map(|p| mtime(p)).collect();
    assert_eq!(before, after, "finished results are never rewritten");

    // A changed spec that would reuse a run directory with other settings is refused.
    let changed = tmp.path().join("changed.toml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(smoke())
            .expect("spec")
            .replace("steps = 20", "steps = 30"),
    )
    .expect("write");
    let o = codats(&["sweep", "run", s(&changed), "--out", s(&dir)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("was made with other settings"));
}

const KILL_SPEC: &str = r#"
name = "kill"
methods = ["codats"]
seeds = [0, 1, 2]
threads = 1
[train]
steps = 40
batch_size = 32
eval_every = 10
[[problems]]
dataset = "synthetic"
pairs = [[0, 1]]
"#;

#[test]
fn killing_the_sweep_loses_nothing_finished_and_resumes() {
    let tmp = common::TempDir::new("sweep-local-kill");
    let spec = tmp.path().join("kill.toml");
    std::fs::write(&spec, KILL_SPEC).expect("write spec");
    let dir = tmp.path().join("sweep");
    let mut child = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args([
            "sweep",
            "run",
            s(&spec),
            "--out",
            s(&dir),
            "--jobs",
            "1",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sweep");
    // Wait until the first job finished and the second has a checkpoint, then kill -9.
    let second = dir.join("runs/synthetic-codats-0-to-1-s1");
    let start = Instant::now();
    loop {
        let first_done = dir
            .join("runs/synthetic-codats-0-to-1-s0/result.json")
            .is_file();
        let second_ckpt = second.join("checkpoints/resume/state.json").is_file();
        if first_done && second_ckpt {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "sweep made no progress"
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "sweep ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill sweep");
    child.wait().expect("reap");
    let first = dir.join("runs/synthetic-codats-0-to-1-s0/result.json");
    let first_time = mtime(&first);
    // The trainer child dies with its parent (no orphan keeps writing); give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    assert_no_partial_results(&dir);
    let status = ok(&["sweep", "status", s(&dir)]);
    assert!(
        status.contains("3 jobs: 1 done, 0 running, 0 failed, 2 pending"),
        "{status}"
    );

    let out = ok(&["sweep", "run", s(&spec), "--out", s(&dir), "--jobs", "1"]);
    assert!(
        out.contains("3 jobs: 2 ran now, 1 were already done, 0 failed"),
        "{out}"
    );
    assert_eq!(mtime(&first), first_time, "the finished job was not rerun");
    let log =
        std::fs::read_to_string(dir.join("logs/synthetic-codats-0-to-1-s1.log")).expect("log");
    assert!(
        log.contains("attempt 1") && log.contains("train --resume"),
        "interrupted job resumed:\n{log}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("result.json")).expect("read"))
            .expect("json");
    assert_eq!(r["steps"], 40);
    assert_no_partial_results(&dir);
}

#[test]
fn failed_jobs_are_reported_and_retried() {
    let tmp = common::TempDir::new("sweep-local-fail");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let spec = tmp.path().join("fail.toml");
    std::fs::write(
        &spec,
        format!(
            "methods = [\"none\"]\nthreads = 1\n[train]\nsteps = 2\nbatch_size = 16\neval_every = 2\ndata_dir = \"{}\"\n\
             [[problems]]\ndataset = \"ucihar\"\npairs = [[2, 11]]\n",
            data.display()
        ),
    )
    .expect("write spec");
    let dir = tmp.path().join("sweep");
    let o = codats(&["sweep", "run", s(&spec), "--out", s(&dir)]);
    assert!(!o.status.success(), "the job has no data and must fail");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 job(s) failed: ucihar-none-2-to-11-s0"),
        "{err}"
    );
    let status = ok(&["sweep", "status", s(&dir), "--lines", "3"]);
    assert!(
        status.contains("1 jobs: 0 done, 0 running, 1 failed, 0 pending"),
        "{status}"
    );
    assert!(
        status.contains("failed  [0] ucihar-none-2-to-11-s0: exit status: 1 after 1 attempt(s)"),
        "{status}"
    );
    assert!(
        status.contains("    | error: "),
        "the failed job's last log lines are shown:\n{status}"
    );

    // Fix the cause (put the data in place) and run again: the failed job is retried.
    let archive = common::real_archive_dir().join("UCI HAR Dataset.zip");
    std::os::unix::fs::symlink(&archive, data.join("UCI HAR Dataset.zip")).expect("link archive");
    let out = ok(&["sweep", "run", s(&spec), "--out", s(&dir)]);
    assert!(
        out.contains("1 jobs: 1 ran now, 0 were already done, 0 failed"),
        "{out}"
    );
    let status = ok(&["sweep", "status", s(&dir)]);
    assert!(
        status.contains("1 jobs: 1 done, 0 running, 0 failed, 0 pending"),
        "{status}"
    );
    let log = std::fs::read_to_string(dir.join("logs/ucihar-none-2-to-11-s0.log")).expect("log");
    assert!(log.contains("attempt 2") && log.contains("done"), "{log}");
}
