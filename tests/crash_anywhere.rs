//! Crash anywhere, resume to the same bytes. A training run and a sweep are killed (SIGKILL, as
//! `kill -9`) at every step and inside every checkpoint, weights, result and metrics write,
//! through the hidden fault points of `codats::fault` (`CODATS_FAULT=<point>:<n>`), then
//! continued; the result must be byte-identical to an uninterrupted run's, and a sweep must lose
//! and repeat nothing. Also: the full-disk path on a small tmpfs (when run as root).
//! Synthetic data only.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn codats(args: &[&str], fault: Option<String>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_codats"));
    c.args(args)
        .env("CODATS_DATA_DIR", "/nonexistent-codats-data")
        .env_remove(codats::fault::ENV);
    if let Some(f) = fault {
        c.env(codats::fault::ENV, f);
    }
    c.output().expect("run codats")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// 12 steps; evaluations (and best-weights writes) after every 2nd step; checkpoints after 4, 8,
/// 12: kills between an evaluation and the next checkpoint replay the evaluation. (Checkpoints
/// fall on evaluations: metrics.csv's loss averages since the previous row are not
/// checkpointed, so a resume between an evaluation and a checkpoint off the evaluation grid
/// would write a different average; see the report of issue 15.)
fn train_args(out: &Path) -> Vec<&str> {
    train_args_with(out, "12", "4")
}

fn train_args_with<'a>(out: &'a Path, steps: &'a str, checkpoint_every: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--sources",
        "1",
        "--target",
        "0",
        "--steps",
        steps,
        "--batch-size",
        "16",
        "--eval-every",
        "2",
        "--checkpoint-every",
        checkpoint_every,
        "--synthetic-windows",
        "12",
        "--threads",
        "1",
        "--quiet",
        "--out",
        s(out),
    ]
}

/// What must come out the same: result.json, every weights file, the resume checkpoint, and
/// metrics.csv without its last column (steps_per_s, a wall-clock rate).
fn outputs(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in [
        "result.json",
        "config.toml",
        "splits.json",
        "checkpoints/last.safetensors",
        "checkpoints/best_source.safetensors",
        "checkpoints/best_target.safetensors",
        "checkpoints/source_risk.safetensors",
        "checkpoints/resume/model.safetensors",
        "checkpoints/resume/optimiser.safetensors",
        "checkpoints/resume/state.json",
    ] {
        out.push((f.to_string(), read(&run.join(f))));
    }
    let metrics: String = text(&read(&run.join("metrics.csv")))
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(a, _)| a).to_string() + "\n")
        .collect();
    out.push((
        "metrics.csv (less steps_per_s)".into(),
        metrics.into_bytes(),
    ));
    out
}

/// Nothing left over by an interrupted write, once a run has finished.
fn assert_no_leftovers(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !(name.ends_with(".tmp") || name.starts_with(".tmp") || name.ends_with(".old")),
            "leftover {}",
            entry.path().display()
        );
        if entry.path().is_dir() {
            assert_no_leftovers(&entry.path());
        }
    }
}

/// Continues a killed run as a user would: `--resume`; when that says there is nothing to
/// resume (killed before config.toml was in place) the original command; when it says to
/// delete the run and start again (killed before splits.json), that. Returns the path taken.
fn recover(out: &Path) -> &'static str {
    let o = codats(&["train", "--resume", "--quiet", "--out", s(out)], None);
    if o.status.success() {
        return "resume";
    }
    let err = text(&o.stderr);
    let advice = format!("delete {} and start the run again", out.display());
    let taken = if err.contains(&advice) {
        std::fs::remove_dir_all(out).expect("delete the run as advised");
        "deleted as advised, started again"
    } else {
        "started again"
    };
    let o = codats(&train_args(out), None);
    assert!(
        o.status.success(),
        "after `--resume` said {err:?}, the original command failed too: {}",
        text(&o.stderr)
    );
    taken
}

/// Every fault point of a training run, each hit at its 1st, 2nd and 3rd occurrence (fewer when
/// a run reaches the end without meeting it again), and every step.
#[test]
fn a_run_killed_anywhere_resumes_to_byte_identical_results() {
    let tmp = common::TempDir::new("crash-train");
    let whole = tmp.path().join("whole");
    let o = codats(&train_args(&whole), None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let want = outputs(&whole);
    let points = [
        "step",
        "metrics-row",
        "weights-tmp",
        "atomic-tmp",
        "checkpoint-model",
        "checkpoint-optimiser",
        "checkpoint-state",
        "checkpoint-manifest",
        "checkpoint-swap",
        "checkpoint-done",
    ];
    let mut kills = 0;
    for point in points {
        let mut n = 1;
        loop {
            let run = tmp.path().join(format!("{point}-{n}"));
            let o = codats(&train_args(&run), Some(format!("{point}:{n}")));
            if o.status.success() {
                assert!(n > 1, "fault point {point} was never reached");
                let _ = std::fs::remove_dir_all(&run);
                break;
            }
            assert_eq!(
                o.status.signal(),
                Some(libc::SIGKILL),
                "{point}:{n}: not killed by the fault point: {}",
                text(&o.stderr)
            );
            kills += 1;
            let how = recover(&run);
            eprintln!("{point}:{n}: {how}");
            for ((f, a), (_, b)) in want.iter().zip(outputs(&run)) {
                assert!(
                    *a == b,
                    "{point}:{n} ({how}): {f} differs from the whole run's"
                );
            }
            assert!(!run.join("codats.lock").exists(), "{point}:{n}: lock left");
            assert_no_leftovers(&run);
            std::fs::remove_dir_all(&run).expect("rm");
            n += 1;
            if n > 3 && point != "step" {
                break;
            }
        }
    }
    eprintln!("{kills} kills, all resumed to the same bytes");
    assert!(kills >= 35, "only {kills} kill points were exercised");
}

fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml")
}

fn sweep_run(dir: &Path, fault: Option<String>) -> Output {
    codats(
        &["sweep", "run", s(&smoke()), "--out", s(dir), "--quiet"],
        fault,
    )
}

/// job id -> result.json bytes.
fn results(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("runs"))
        .expect("runs")
        .map(|e| {
            let e = e.expect("entry");
            let id = e.file_name().to_string_lossy().into_owned();
            (id, read(&e.path().join("result.json")))
        })
        .collect();
    out.sort();
    out
}

/// `=== <job> done` lines in a job's logs: a job trained to the end twice shows two.
fn done_lines(dir: &Path, id: &str) -> usize {
    let log = text(&read(&dir.join("logs").join(format!("{id}.log"))));
    log.lines()
        .filter(|l| *l == format!("=== {id} done"))
        .count()
}

#[test]
fn a_sweep_killed_anywhere_loses_and_repeats_nothing() {
    let tmp = common::TempDir::new("crash-sweep");
    let clean = tmp.path().join("clean");
    let o = sweep_run(&clean, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let want = results(&clean);
    assert_eq!(want.len(), 4);

    // The runner killed before it starts the n-th job's trainer, and after the n-th trainer
    // ended but before the outcome is recorded.
    for (point, done_before) in [
        ("sweep-job-start", [0, 1, 2, 3]),
        ("sweep-job-end", [1, 2, 3, 4]),
    ] {
        for (n, done) in (1..=4).zip(done_before) {
            let dir = tmp.path().join(format!("{point}-{n}"));
            let o = sweep_run(&dir, Some(format!("{point}:{n}")));
            assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{point}:{n}");
            let o = sweep_run(&dir, None);
            assert!(o.status.success(), "{point}:{n}: {}", text(&o.stderr));
            assert_eq!(
                text(&o.stdout),
                format!(
                    "sweep smoke: 4 jobs: {} ran now, {done} were already done, 0 failed, 0 busy elsewhere\n",
                    4 - done
                ),
                "{point}:{n}"
            );
            assert_eq!(results(&dir), want, "{point}:{n}: results differ");
            let locks: Vec<_> = std::fs::read_dir(dir.join("state"))
                .expect("state dir")
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|n| n.to_string_lossy().ends_with(".lock"))
                .collect();
            assert!(locks.is_empty(), "{point}:{n}: locks left: {locks:?}");
            for (id, _) in &want {
                assert!(done_lines(&dir, id) <= 1, "{point}:{n}: {id} ran twice");
            }
            std::fs::remove_dir_all(&dir).expect("rm");
        }
    }

    // Every trainer killed mid-run (after its 13th step, past its checkpoint at 10): the first
    // call records 4 failures; the next resumes all 4 to the same results.
    let dir = tmp.path().join("trainers-killed");
    let o = sweep_run(&dir, Some("step:13".into()));
    assert_eq!(
        text(&o.stdout),
        "sweep smoke: 4 jobs: 0 ran now, 0 were already done, 4 failed, 0 busy elsewhere\n",
        "{}",
        text(&o.stderr)
    );
    let o = sweep_run(&dir, None);
    assert_eq!(
        text(&o.stdout),
        "sweep smoke: 4 jobs: 4 ran now, 0 were already done, 0 failed, 0 busy elsewhere\n",
        "{}",
        text(&o.stderr)
    );
    assert_eq!(results(&dir), want, "resumed results differ");
    for (id, _) in &want {
        let log = text(&read(&dir.join("logs").join(format!("{id}.log"))));
        assert!(
            log.contains(&format!("=== {id} failed: killed by signal 9")),
            "{log}"
        );
        assert!(
            log.contains("--resume"),
            "the second attempt resumes: {log}"
        );
    }
}

/// A disk that fills during training: a one-line error naming the file that could not be
/// written, exit 1, and no result.json (whole or partial). Needs root for `mount -t tmpfs`.
#[test]
fn a_full_disk_is_a_one_line_error_naming_the_file_and_leaves_no_result() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: not root, cannot mount a small tmpfs");
        return;
    }
    let tmp = common::TempDir::new("crash-full");
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "codats-test", s(&mnt)])
        .output();
    match m {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!("skipped: mount -t tmpfs failed: {}", text(&o.stderr).trim());
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            return;
        }
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    // The model's weights and optimiser moments alone outgrow 2 MB.
    let run = mnt.join("run");
    let o = codats(&train_args_with(&run, "40", "1"), None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(
        err.contains(s(&run)),
        "the error names no file of the run: {err:?}"
    );
    assert!(
        err.contains("No space left on device"),
        "the error does not say the disk is full: {err:?}"
    );
    assert!(!run.join("result.json").exists(), "result.json was written");
    assert!(
        !run.join("result.json.tmp").exists(),
        "a partial result.json.tmp was left"
    );
    eprintln!("full disk: {}", err.trim());
}
