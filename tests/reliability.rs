//! Run directories and sweeps survive the accidents of real use: two processes on one run,
//! dead holders' locks, damaged checkpoints, edited configs, corrupt results, runs killed
//! before their first checkpoint, leftovers of interrupted writes, and flags that `--resume`
//! cannot honour. Synthetic data only: no files needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

fn codats(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(args)
        .env("CODATS_DATA_DIR", "/nonexistent-codats-data")
        .output()
        .expect("run codats")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs codats, expecting success; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let o = codats(args);
    assert!(
        o.status.success(),
        "codats {args:?} failed:\n{}",
        text(&o.stderr)
    );
    (text(&o.stdout), text(&o.stderr))
}

/// Runs codats, expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let o = codats(args);
    assert!(!o.status.success(), "codats {args:?} succeeded");
    text(&o.stderr)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `codats train` of a short synthetic run into `out`, with `extra` flags.
fn train_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--sources",
        "1",
        "--target",
        "0",
        "--steps",
        "20",
        "--batch-size",
        "32",
        "--eval-every",
        "10",
        "--checkpoint-every",
        "5",
        "--threads",
        "1",
        "--quiet",
        "--out",
        s(out),
    ];
    a.extend_from_slice(extra);
    a
}

fn resume(out: &Path) -> Output {
    codats(&["train", "--resume", "--quiet", "--out", s(out)])
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A pid that no longer runs: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().expect("spawn true");
    let pid = c.id();
    c.wait().expect("wait");
    pid
}

#[test]
fn a_second_process_on_a_run_directory_is_refused_naming_the_holder() {
    let tmp = common::TempDir::new("rel-concurrent");
    let out = tmp.path().join("run");
    let long: Vec<&str> = train_args(&out, &[])
        .into_iter()
        .map(|a| if a == "20" { "1000000" } else { a })
        .collect();
    let mut first = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(&long)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the first train");
    let lock = out.join("codats.lock");
    let start = Instant::now();
    while !lock.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let holder: serde_json::Value = serde_json::from_slice(&read(&lock)).expect("lock json");
    assert_eq!(holder["pid"], first.id());
    let want = format!(
        "error: {} is in use by another codats process (pid {} on {}, since unix time {}); wait for it to end\n",
        out.display(),
        first.id(),
        codats::lockfile::hostname(),
        holder["started"]
    );
    assert_eq!(fails(&train_args(&out, &[])), want);
    assert_eq!(fails(&["eval", s(&out)]), want);
    first.kill().expect("kill");
    first.wait().expect("wait");
}

#[test]
fn a_lock_of_a_dead_process_is_reclaimed_and_leftovers_are_removed_on_resume() {
    let tmp = common::TempDir::new("rel-stale");
    let out = tmp.path().join("run");
    ok(&train_args(&out, &["--stop-after", "8"]));
    assert!(
        !out.join("codats.lock").exists(),
        "the lock goes away with the process"
    );
    let pid = dead_pid();
    let host = codats::lockfile::hostname();
    std::fs::write(
        out.join("codats.lock"),
        format!(r#"{{"pid":{pid},"host":"{host}","started":1}}"#),
    )
    .expect("write a stale lock");
    std::fs::create_dir_all(out.join("checkpoints/resume.tmp")).expect("mkdir");
    std::fs::write(
        out.join("checkpoints/resume.tmp/model.safetensors"),
        b"half",
    )
    .expect("w");
    std::fs::write(out.join("result.json.tmp"), b"{").expect("w");
    let o = resume(&out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!(
            "note: reclaimed the lock of {d}: its holder (pid {pid} on {host}) is no longer running\n\
             removed {d}/checkpoints/resume.tmp (left by an interrupted write)\n\
             removed {d}/result.json.tmp (left by an interrupted write)\n",
            d = out.display()
        )
    );
    assert!(out.join("result.json").is_file());
    assert!(!out.join("result.json.tmp").exists());
    assert!(!out.join("codats.lock").exists());
}

#[test]
fn a_damaged_checkpoint_and_an_edited_config_are_refused() {
    let tmp = common::TempDir::new("rel-damaged");
    let out = tmp.path().join("run");
    ok(&train_args(&out, &["--stop-after", "8"]));
    let model = out.join("checkpoints/resume/model.safetensors");
    let mut bytes = read(&model);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&model, &bytes).expect("flip a byte");
    assert_eq!(
        text(&resume(&out).stderr),
        format!(
            "error: checkpoints/resume/model.safetensors does not match its checksum (the checkpoint is damaged); \
             to start the run over, delete {d}/checkpoints/resume and run `codats train --resume --out {d}`\n",
            d = out.display()
        )
    );
    // Restored, the run finishes; then an edited config.toml is refused by eval and resume.
    bytes[last] ^= 1;
    std::fs::write(&model, &bytes).expect("restore");
    let o = resume(&out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    ok(&["eval", s(&out)]);
    let cfg = out.join("config.toml");
    let edited = text(&read(&cfg)).replace("steps = 20", "steps = 21");
    std::fs::write(&cfg, edited).expect("edit config");
    let want = "error: config.toml was edited after the run was created: it no longer matches the checksum \
                in checkpoints/resume/manifest.json; restore the original, or train a new run with the new \
                settings in another --out\n";
    assert_eq!(fails(&["eval", s(&out)]), want);
    assert_eq!(text(&resume(&out).stderr), want);
}

#[test]
fn flags_that_would_change_the_run_are_refused_on_resume() {
    let tmp = common::TempDir::new("rel-flags");
    let out = tmp.path().join("run");
    ok(&train_args(&out, &["--stop-after", "3"]));
    for (flag, value) in [
        ("--steps", "5"),
        ("--seed", "3"),
        ("--method", "none"),
        ("--threads", "2"),
    ] {
        assert_eq!(
            fails(&[
                "train",
                "--resume",
                "--quiet",
                flag,
                value,
                "--out",
                s(&out)
            ]),
            format!(
                "error: {flag} cannot be changed on --resume; the run's config.toml decides it\n"
            )
        );
    }
    // Allowed: they do not change what the run computes.
    ok(&[
        "train",
        "--resume",
        "--quiet",
        "--offline",
        "--out",
        s(&out),
    ]);
}

#[test]
fn a_run_killed_before_its_first_checkpoint_resumes_from_scratch() {
    let tmp = common::TempDir::new("rel-early");
    let whole = tmp.path().join("whole");
    let early = tmp.path().join("early");
    ok(&train_args(&whole, &[]));
    ok(&train_args(&early, &["--stop-after", "0"]));
    assert!(!early.join("checkpoints/resume").exists());
    assert_eq!(
        fails(&train_args(&early, &[])),
        format!(
            "error: {d} already holds a run; continue it with `codats train --resume --out {d}` or choose another --out\n",
            d = early.display()
        )
    );
    let o = resume(&early);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for f in [
        "result.json",
        "checkpoints/last.safetensors",
        "checkpoints/resume/state.json",
    ] {
        assert_eq!(read(&whole.join(f)), read(&early.join(f)), "{f} differs");
    }
    let metrics = |d: &Path| -> Vec<String> {
        text(&read(&d.join("metrics.csv")))
            .lines()
            .map(|l| {
                l.rsplit_once(',')
                    .map(|(a, _)| a.to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(metrics(&whole), metrics(&early));

    // Killed between config.toml and splits.json: the missing file is named.
    std::fs::remove_file(early.join("splits.json")).expect("rm");
    std::fs::remove_dir_all(early.join("checkpoints")).expect("rm");
    assert_eq!(
        text(&resume(&early).stderr),
        format!(
            "error: {d}/splits.json is missing: the run was stopped while it was being created; \
             delete {d} and start the run again\n",
            d = early.display()
        )
    );
}

fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml")
}

fn first_job(dir: &Path) -> String {
    let jobs: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("jobs.json"))).expect("jobs.json");
    jobs["jobs"][0]["id"].as_str().expect("job id").to_string()
}

#[test]
fn a_corrupt_result_is_not_done_and_job_locks_can_be_removed_by_hand() {
    let tmp = common::TempDir::new("rel-sweep");
    let dir = tmp.path().join("smoke");
    ok(&["sweep", "run", s(&smoke()), "--out", s(&dir), "--quiet"]);
    let id = first_job(&dir);
    let result = dir.join("runs").join(&id).join("result.json");
    let good = read(&result);
    std::fs::write(&result, b"{").expect("truncate result.json");
    let (status, _) = ok(&["sweep", "status", s(&dir)]);
    assert_eq!(
        status,
        format!(
            "sweep smoke ({}): 4 jobs: 3 done, 0 running, 1 failed, 0 pending\n\
             failed  [0] {id}: result.json cannot be read (EOF while parsing an object at line 1 column 1); \
             `codats sweep run` reruns it\n",
            dir.display()
        )
    );
    let (out, _) = ok(&["sweep", "run", s(&smoke()), "--out", s(&dir), "--quiet"]);
    assert_eq!(
        out,
        "sweep smoke: 4 jobs: 1 ran now, 3 were already done, 0 failed, 0 busy elsewhere\n"
    );
    assert_eq!(read(&result), good, "the rerun recomputes the same result");

    // Locks of other hosts are never taken over automatically: `sweep unlock` removes them.
    let lock = dir.join("state").join(format!("{id}.lock"));
    std::fs::write(
        &lock,
        r#"{"pid":4242,"host":"node-17.invalid","started":1}"#,
    )
    .expect("lock");
    assert_eq!(
        ok(&["sweep", "unlock", s(&dir), &id]).0,
        format!("unlocked {id} (pid 4242 on node-17.invalid)\n")
    );
    assert!(!lock.exists());
    assert_eq!(
        ok(&["sweep", "unlock", s(&dir), &id]).0,
        format!("{id}: not locked\n")
    );
    assert_eq!(
        ok(&["sweep", "unlock", s(&dir), "--all"]).0,
        format!("no job of {} is locked\n", dir.display())
    );
    assert_eq!(
        fails(&["sweep", "unlock", s(&dir), "nope"]),
        format!("error: nope is not a job of {}\n", dir.display())
    );
}
