//! Reproducibility on the real UCI HAR archive: the same seed gives an identical result.json,
//! a killed-and-resumed run ends with the same weights as an uninterrupted one, and
//! `codats eval` recomputes result.json exactly.

use std::path::Path;
use std::process::Command;

mod common;

fn codats(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(args)
        .env(
            "CODATS_DATA_DIR",
            common::real_archive_dir().parent().expect("data root"),
        )
        .output()
        .expect("run codats");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "codats {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A short codats run: 2 sources, batch 48 (16 per domain), evaluated and checkpointed every 10 steps.
fn short_run(out: &Path, seed: &str, extra: &[&str]) {
    run_evaluating_every(out, seed, "10", extra);
}

fn run_evaluating_every(out: &Path, seed: &str, eval_every: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--dataset",
        "ucihar",
        "--sources",
        "2,3",
        "--target",
        "11",
        "--method",
        "codats_ws",
        "--steps",
        "30",
        "--batch-size",
        "48",
        "--batch-division",
        "all",
        "--eval-every",
        eval_every,
        "--seed",
        seed,
        "--threads",
        "2",
        "--offline",
        "--quiet",
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    codats(&args);
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// metrics.csv without the wall-clock column.
fn metrics_without_timing(dir: &Path) -> Vec<String> {
    String::from_utf8(read(&dir.join("metrics.csv")))
        .expect("utf-8")
        .lines()
        .map(|l| {
            l.rsplit_once(',')
                .map(|(a, _)| a.to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn same_seed_same_result_and_resume_equals_uninterrupted() {
    let tmp = common::TempDir::new("reproducible");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    let d = tmp.path().join("d");
    short_run(&a, "7", &[]);
    short_run(&b, "7", &[]);
    assert_eq!(
        read(&a.join("result.json")),
        read(&b.join("result.json")),
        "same seed, different result.json"
    );
    assert_eq!(
        read(&a.join("checkpoints/last.safetensors")),
        read(&b.join("checkpoints/last.safetensors"))
    );

    // A different seed trains a different model.
    short_run(&d, "8", &[]);
    assert_ne!(
        read(&a.join("checkpoints/last.safetensors")),
        read(&d.join("checkpoints/last.safetensors"))
    );

    // Killed after 25 updates (the last checkpoint after the update with index 20, i.e. 21
    // updates: the run does steps + 1 = 31), then resumed: identical to uninterrupted.
    short_run(&c, "7", &["--stop-after", "25"]);
    assert!(
        !c.join("result.json").exists(),
        "a stopped run must not write result.json"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&read(&c.join("checkpoints/resume/state.json"))).expect("json");
    assert_eq!(state["step"], 21);
    codats(&[
        "train",
        "--resume",
        "--offline",
        "--quiet",
        "--out",
        c.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        read(&a.join("checkpoints/last.safetensors")),
        read(&c.join("checkpoints/last.safetensors"))
    );
    assert_eq!(
        read(&a.join("checkpoints/best_source.safetensors")),
        read(&c.join("checkpoints/best_source.safetensors"))
    );
    assert_eq!(read(&a.join("result.json")), read(&c.join("result.json")));
    assert_eq!(metrics_without_timing(&a), metrics_without_timing(&c));
    assert_eq!(
        metrics_without_timing(&a).len(),
        5,
        "header + 4 evaluations (steps 0, 10, 20, 30)"
    );
    let steps: Vec<String> = metrics_without_timing(&a)
        .iter()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(steps, ["0", "10", "20", "30"]);

    // `codats eval` recomputes result.json from the checkpoints, exactly.
    std::fs::remove_file(a.join("result.json")).expect("remove");
    codats(&["eval", a.to_str().expect("utf-8")]);
    assert_eq!(read(&a.join("result.json")), read(&b.join("result.json")));

    // The run directory holds what the README promises.
    for f in [
        "config.toml",
        "splits.json",
        "metrics.csv",
        "checkpoints/best_target.safetensors",
    ] {
        assert!(a.join(f).exists(), "missing {f}");
    }
    let cfg = String::from_utf8(read(&a.join("config.toml"))).expect("utf-8");
    assert!(
        cfg.contains("seed = 7")
            && cfg.contains("[method]\nname = \"codats_ws\"")
            && cfg.contains("code_version"),
        "{cfg}"
    );
    let splits: serde_json::Value =
        serde_json::from_slice(&read(&a.join("splits.json"))).expect("json");
    // scikit-learn's sizes, as the reference: subject 11 has 316 windows: test ⌈63.2⌉ = 64,
    // valid ⌈0.2 · 252⌉ = 51, train 201; subject 2 has 302: test 61, valid ⌈48.2⌉ = 49, train 192.
    let len = |s: &str, part: &str| splits[s][part].as_array().expect("array").len();
    assert_eq!(
        (len("11", "train"), len("11", "valid"), len("11", "test")),
        (201, 51, 64)
    );
    assert_eq!(
        (len("2", "train"), len("2", "valid"), len("2", "test")),
        (192, 49, 61)
    );

    // A second run into the same directory is refused instead of overwriting it.
    let out = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args([
            "train",
            "--dataset",
            "ucihar",
            "--sources",
            "2",
            "--target",
            "11",
            "--steps",
            "1",
            "--offline",
            "--quiet",
            "--out",
        ])
        .arg(&a)
        .env(
            "CODATS_DATA_DIR",
            common::real_archive_dir().parent().expect("data root"),
        )
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a run"));
}

/// Checkpoints that fall between evaluations (every 4 steps, evaluations every 3): the row after
/// the resume averages steps from before and after the kill, and must equal the uninterrupted
/// run's (the unfinished row's sums are part of the checkpoint).
#[test]
fn a_checkpoint_between_evaluations_resumes_to_the_same_metrics_rows() {
    let tmp = common::TempDir::new("misaligned");
    let whole = tmp.path().join("whole");
    let killed = tmp.path().join("killed");
    let cadence = ["--checkpoint-every", "4"];
    run_evaluating_every(&whole, "7", "3", &cadence);
    // Killed after 7 updates: the last checkpoint is after update index 4 (5 updates), two
    // updates after the evaluation at index 3.
    let mut stopped = cadence.to_vec();
    stopped.extend(["--stop-after", "7"]);
    run_evaluating_every(&killed, "7", "3", &stopped);
    let state: serde_json::Value =
        serde_json::from_slice(&read(&killed.join("checkpoints/resume/state.json"))).expect("json");
    assert_eq!(state["step"], 5);
    assert_eq!(state["metrics_pending"]["n"], 1, "{state}");
    codats(&[
        "train",
        "--resume",
        "--offline",
        "--quiet",
        "--out",
        killed.to_str().expect("utf-8"),
    ]);
    let rows = metrics_without_timing(&whole);
    assert_eq!(rows.len(), 1 + 11, "header + evaluations at 0, 3, …, 30");
    assert_eq!(rows, metrics_without_timing(&killed));
    assert_eq!(
        read(&whole.join("result.json")),
        read(&killed.join("result.json"))
    );
}
