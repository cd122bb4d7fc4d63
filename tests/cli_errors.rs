//! Bad command lines get one clear line on stderr and a non-zero exit, never a panic.

use std::process::Command;

mod common;

fn codats(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(args)
        .env(
            "CODATS_DATA_DIR",
            common::real_archive_dir().parent().expect("data root"),
        )
        .output()
        .expect("run codats");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn train(extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--dataset",
        "ucihar",
        "--offline",
        "--quiet",
        "--steps",
        "1",
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = codats(&args);
    assert_ne!(code, 0, "expected failure for {extra:?}");
    assert!(!err.contains("panicked"), "panic for {extra:?}: {err}");
    err.trim_end().to_string()
}

#[test]
fn target_that_is_also_a_source() {
    assert_eq!(
        train(&["--sources", "1,3,5", "--target", "3"]),
        "error: target 3 is also a source; pick a target outside --sources"
    );
}

#[test]
fn domain_outside_the_dataset() {
    assert_eq!(
        train(&["--sources", "1,31", "--target", "7"]),
        "error: domain 31 is not in ucihar (its domains are 1..30)"
    );
    assert_eq!(
        train(&["--sources", "1", "--target", "0"]),
        "error: domain 0 is not in ucihar (its domains are 1..30)"
    );
}

#[test]
fn duplicate_sources() {
    assert_eq!(
        train(&["--sources", "1,3,1", "--target", "7"]),
        "error: source 1 is listed twice in --sources"
    );
}

#[test]
fn zero_steps() {
    let (code, _, err) = codats(&[
        "train",
        "--dataset",
        "ucihar",
        "--sources",
        "1",
        "--target",
        "2",
        "--steps",
        "0",
        "--offline",
    ]);
    assert_ne!(code, 0);
    assert_eq!(err.trim_end(), "error: --steps must be at least 1 (got 0)");
}

#[test]
fn invalid_target_proportions() {
    let base = [
        "--sources",
        "1",
        "--target",
        "2",
        "--method",
        "codats_ws",
        "--target-proportions",
    ];
    let with = |p: &str| {
        let mut a = base.to_vec();
        a.push(p);
        train(&a)
    };
    assert_eq!(
        with("0.5,0.5"),
        "error: --target-proportions has 2 values but the dataset has 6 classes"
    );
    assert_eq!(
        with("0.5,0.5,0.1,0.1,0.1,-0.3"),
        "error: --target-proportions value -0.3 is not a non-negative number"
    );
    assert_eq!(
        with("0.2,0.2,0.2,0.2,0.1,0.2"),
        "error: --target-proportions sum to 1.100000, not 1 (±1e-6)"
    );
}

#[test]
fn unknown_dataset_and_method_list_the_valid_ones() {
    let (code, _, err) = codats(&[
        "train",
        "--dataset",
        "mnist",
        "--sources",
        "1",
        "--target",
        "2",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid value 'mnist' for '--dataset <DATASET>'"),
        "{err}"
    );
    assert!(
        err.contains(
            "[possible values: ucihar, ucihhar, wisdm_ar, wisdm_at, uwave, ucihapt, tabular, synthetic]"
        ),
        "{err}"
    );
    let (code, _, err) = codats(&[
        "train",
        "--dataset",
        "ucihar",
        "--sources",
        "1",
        "--target",
        "2",
        "--method",
        "dann2",
    ]);
    assert_eq!(code, 2);
    // Every registered method, in registry order (the order tables list them).
    let names: Vec<&str> = codats::methods::REGISTRY.iter().map(|m| m.name).collect();
    let want = format!("[possible values: {}]", names.join(", "));
    assert!(err.contains(&want), "{err}");
    assert!(want.starts_with("[possible values: none, codats, codats_ws, target_only"));
}

#[test]
fn missing_archive_offline_says_where_to_put_it() {
    let dir = common::TempDir::new("cli-missing");
    let (code, _, err) = codats(&[
        "train",
        "--dataset",
        "ucihar",
        "--sources",
        "1",
        "--target",
        "2",
        "--offline",
        "--data-dir",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "{}",
            dir.path().join("UCI HAR Dataset.zip").display()
        )),
        "{err}"
    );
    assert!(err.contains("codats datasets download ucihar"), "{err}");
}

#[test]
fn resume_without_a_run() {
    let dir = common::TempDir::new("cli-noresume");
    let out = dir.path().join("nothing");
    let (code, _, err) = codats(&[
        "train",
        "--dataset",
        "ucihar",
        "--sources",
        "1",
        "--target",
        "2",
        "--resume",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.starts_with("error: reading ") && err.contains("config.toml"),
        "{err}"
    );
}

#[test]
fn method_parameters_are_named_in_errors() {
    let err = train(&[
        "--sources",
        "1",
        "--target",
        "2",
        "--method",
        "codats",
        "--param",
        "weight=0.5",
    ]);
    assert_eq!(
        err,
        "error: --param weight: method codats has no parameter `weight` (its parameters: none)"
    );
    let (code, _, err) = codats(&["train", "--target", "2", "--param", "weight"]);
    assert_eq!(code, 2);
    assert!(err.contains("expected NAME=VALUE, got \"weight\""), "{err}");
}

#[test]
fn slurm_values_cannot_inject_script_lines() {
    let tmp = common::TempDir::new("slurm-inject");
    let out = tmp.path().join("sweep");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/smoke.toml");
    let (code, _, err) = codats(&[
        "sweep",
        "slurm",
        spec,
        "--out",
        out.to_str().expect("utf-8"),
        "--dry-run",
        "--partition",
        "cpu\ntouch pwned",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("slurm setting `partition` = \"cpu\\ntouch pwned\" contains the control character U+000A"),
        "{err}"
    );
    assert!(!out.join("slurm").exists(), "no script may be written");
    let (code, _, err) = codats(&[
        "sweep",
        "slurm",
        spec,
        "--out",
        out.to_str().expect("utf-8"),
        "--dry-run",
        "--cpus",
        "0",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("slurm setting `cpus-per-task` must be at least 1 (got 0)"),
        "{err}"
    );
}

#[test]
fn a_full_or_closed_stdout_is_an_error_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    // >/dev/full: one line and exit 1 (it was a panic with exit 101).
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_codats"))
        .arg("methods")
        .stdout(full)
        .output()
        .expect("run codats");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "error: writing to standard output: No space left on device (os error 28)"
    );
    // A pipe whose reader has gone (`codats … | head -0`): ends by SIGPIPE, quietly.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(["datasets", "list"])
        .stdout(writer)
        .output()
        .expect("run codats");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {err}",
        out.status
    );
}

#[test]
fn zero_counts_are_refused_not_run_as_one() {
    for (flag, args) in [
        (
            "--threads",
            vec!["train", "--target", "1", "--threads", "0"],
        ),
        (
            "--checkpoint-every",
            vec!["train", "--target", "1", "--checkpoint-every", "0"],
        ),
        (
            "--jobs",
            vec!["sweep", "run", "x.toml", "--out", "o", "--jobs", "0"],
        ),
        (
            "--threads",
            vec!["sweep", "run", "x.toml", "--out", "o", "--threads", "0"],
        ),
        ("--sources", vec!["bench", "--sources", "0"]),
    ] {
        let (code, _, err) = codats(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(&format!("invalid value '0' for '{flag} "))
                && err.contains("must be at least 1 (got 0)"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_batch_too_large_for_memory_is_refused_before_the_run_starts() {
    let tmp = common::TempDir::new("huge-batch");
    let out = tmp.path().join("run");
    let (code, _, err) = codats(&[
        "train",
        "--target",
        "0",
        "--sources",
        "1",
        "--steps",
        "1",
        "--batch-size",
        "10000000",
        "--quiet",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: --batch-size 10000000 needs about 9766 GiB for one training step on windows of 128 samples; this machine has "),
        "{err}"
    );
    assert!(
        !out.join("config.toml").exists(),
        "no run is left behind to --resume"
    );
}

#[test]
fn ws_needs_an_adaptation_method_on_the_unlabelled_target() {
    for method in ["none", "target_only"] {
        assert_eq!(
            train(&[
                "--sources",
                "2",
                "--target",
                "11",
                "--method",
                method,
                "--ws"
            ]),
            format!(
                "error: --ws adds DA-WS on the unlabelled target's predictions, and method \
                 {method} trains on no unlabelled target"
            )
        );
    }
    assert_eq!(
        train(&[
            "--sources",
            "2",
            "--target",
            "11",
            "--method",
            "codats_ws",
            "--ws"
        ]),
        "error: --ws: method codats_ws has the DA-WS loss already (drop --ws)"
    );
    // Proportions and noise without DA-WS name the way to get it.
    assert_eq!(
        train(&[
            "--sources",
            "2",
            "--target",
            "11",
            "--method",
            "dann_gs",
            "--ws-noise",
            "0.1"
        ]),
        "error: --ws-noise is only used by codats_ws or a method run with --ws (method is dann_gs)"
    );
}

#[test]
fn a_method_that_trains_on_sources_needs_one() {
    // `mdan` with one source is fine; `dann_gs` (or any source-trained method) with none is not.
    for method in ["dann_gs", "mdan", "advskm", "dirt_t"] {
        assert_eq!(
            train(&["--target", "11", "--method", method]),
            format!("error: method {method} needs at least one source domain (--sources)")
        );
    }
}
