//! The DA baselines run end to end on the real UCI HAR archive, pair 2 → 11: Deep CORAL, MMD
//! and DANN-GS for 500 steps each in one test, MDAN, CDAN, HoMM and DSAN for 400 steps in one test
//! each. Each trains (accuracy far above chance), logs its alignment loss in metrics.csv, and
//! saves its parameters in config.toml.

use std::path::Path;
use std::process::Command;

mod common;

/// (method, its loss column in metrics.csv, its weight parameter if it has one)
const METHODS: &[(&str, &str, Option<&str>)] = &[
    ("coral", "coral_loss", Some("coral_weight")),
    ("mmd", "mmd_loss", Some("mmd_weight")),
    ("dann_gs", "domain_loss", None),
];

fn train(out: &Path, method: &str, extra: &[&str]) {
    train_for(out, method, "500", extra)
}

fn train_for(out: &Path, method: &str, steps: &str, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args([
            "train",
            "--dataset",
            "ucihar",
            "--sources",
            "2",
            "--target",
            "11",
            "--steps",
            steps,
            "--lr",
            "1e-3",
            "--eval-every",
            "100",
            "--seed",
            "0",
            "--threads",
            "2",
            "--offline",
            "--quiet",
            "--method",
            method,
            "--out",
        ])
        .arg(out)
        .args(extra)
        .env(
            "CODATS_DATA_DIR",
            common::real_archive_dir().parent().expect("data root"),
        )
        .output()
        .expect("run codats");
    assert!(
        o.status.success(),
        "{method}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn each_da_baseline_trains_on_ucihar() {
    let tmp = common::TempDir::new("da-baselines");
    for &(method, column, weight) in METHODS {
        let out = tmp.path().join(method);
        let param = weight.map(|w| format!("{w}=0.5"));
        let extra: Vec<&str> = match &param {
            Some(p) => vec!["--param", p],
            None => Vec::new(),
        };
        train(&out, method, &extra);
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
                .expect("json");
        let acc = r["selection"]["last"]["target_test"]["accuracy"]
            .as_f64()
            .expect("accuracy");
        eprintln!("{method}: 2 -> 11 target-test accuracy {acc:.3} after 500 steps");
        assert!(acc > 0.5, "{method}: {acc} (chance is 1/6)");
        let csv = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics.csv");
        let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == column)
            .expect("loss column");
        for line in csv.lines().skip(1) {
            let v: f64 = line
                .split(',')
                .nth(col)
                .expect("field")
                .parse()
                .expect("number");
            assert!(v.is_finite() && v >= 0.0, "{method}: {column} = {v}");
        }
        let cfg = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
        let table = match weight {
            Some(w) => format!("[method]\nname = \"{method}\"\n{w} = 0.5\n"),
            None => format!("[method]\nname = \"{method}\"\n"),
        };
        assert!(cfg.ends_with(&table), "{cfg}");
    }
}

/// A short run (400 steps, seed 0, pair 2 → 11) of one of the later baselines: it trains (target
/// accuracy above `floor`), logs `column` finite and non-negative at every evaluation, and
/// records every parameter of the method in config.toml's `[method]` table.
fn short_run(method: &str, column: &str, floor: f64) {
    let tmp = common::TempDir::new(&format!("da-short-{method}"));
    let out = tmp.path().join(method);
    train_for(&out, method, "400", &[]);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
            .expect("json");
    let acc = r["selection"]["last"]["target_test"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    eprintln!("{method}: 2 -> 11 target-test accuracy {acc:.3} after 400 steps");
    assert!(acc > floor, "{method}: {acc} (chance is 1/6)");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics.csv");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("{method}: no {column} in {header:?}"));
    let rows = csv.lines().skip(1).count();
    assert_eq!(rows, 5, "{method}: evaluations at steps 0, 100, .., 400");
    for line in csv.lines().skip(1) {
        let v: f64 = line
            .split(',')
            .nth(col)
            .expect("field")
            .parse()
            .expect("number");
        assert!(v.is_finite() && v >= 0.0, "{method}: {column} = {v}");
    }
    let cfg = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    let kind = codats::methods::MethodKind::parse(method).expect("registered");
    let table = cfg.split("[method]\n").nth(1).expect("[method] table");
    for p in kind.info().params {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("{} = ", p.name))),
            "{method}: {} missing from {table}",
            p.name
        );
    }
}

#[test]
fn mdan_trains_on_ucihar() {
    short_run("mdan", "domain_loss", 0.7);
}

#[test]
fn cdan_trains_on_ucihar() {
    short_run("cdan", "domain_loss", 0.6);
}

#[test]
fn homm_trains_on_ucihar() {
    short_run("homm", "homm_loss", 0.7);
}

#[test]
fn dsan_trains_on_ucihar() {
    short_run("dsan", "lmmd_loss", 0.7);
}

#[test]
fn codats_with_gct_trains_on_ucihar() {
    // `--gct` alone picks the plain candle path and is saved in config.toml; 300 steps of CoDATS
    // (seed 0, 2 → 11) reached 84.4 % target-test accuracy (last and best rules).
    let tmp = common::TempDir::new("da-gct");
    let out = tmp.path().join("codats-gct");
    train_for(&out, "codats", "300", &["--gct"]);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
            .expect("json");
    let acc = r["selection"]["last"]["target_test"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    eprintln!("codats --gct: 2 -> 11 target-test accuracy {acc:.3} after 300 steps");
    assert!(acc > 0.78, "codats --gct: {acc} (chance is 1/6)");
    let cfg = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(
        cfg.contains("\nkernels = \"candle\"\ngct = true\n"),
        "{cfg}"
    );
    // The selected weights hold the gates of the three convolutions.
    let bytes = std::fs::read(out.join("checkpoints").join("last.safetensors")).expect("weights");
    let text = String::from_utf8_lossy(&bytes);
    for i in 1..=3 {
        assert!(text.contains(&format!("fe.conv{i}.gct.gamma")), "conv{i}");
    }
    // The fast kernels, asked for explicitly, are refused in one line.
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args([
            "train",
            "--target",
            "1",
            "--steps",
            "1",
            "--gct",
            "--kernels",
            "fast",
        ])
        .args(["--quiet", "--out"])
        .arg(tmp.path().join("refused"))
        .output()
        .expect("run codats");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--gct runs on the plain candle path: use --kernels candle"),
        "{err}"
    );
}
