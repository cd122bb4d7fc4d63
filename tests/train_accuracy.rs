//! Short real training runs on UCI HAR (paper pair 2 → 11) must clearly beat chance (16.7 %),
//! and training on the target's own labels (`upper`) must do at least as well as adapting to it.
//!
//! 500 steps at batch 64 and learning rate 1e-3 (the paper: 30 000 steps at 1e-4) — enough for
//! the BatchNorm running statistics (momentum 0.99) to settle; see README "Results".

use std::process::Command;

mod common;

fn target_test_accuracy(method: &str, out: &std::path::Path) -> f64 {
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args([
            "train",
            "--dataset",
            "ucihar",
            "--sources",
            "2",
            "--target",
            "11",
            "--method",
            method,
        ])
        .args([
            "--steps",
            "500",
            "--batch-size",
            "64",
            "--lr",
            "1e-3",
            "--eval-every",
            "100",
        ])
        .args([
            "--seed",
            "1",
            "--threads",
            "2",
            "--offline",
            "--quiet",
            "--out",
        ])
        .arg(out)
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
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
            .expect("json");
    r["selection"]["last"]["target_test"]["accuracy"]
        .as_f64()
        .expect("accuracy")
}

#[test]
fn none_codats_and_upper_beat_chance_on_a_paper_pair() {
    let tmp = common::TempDir::new("accuracy");
    let none = target_test_accuracy("none", &tmp.path().join("none"));
    let codats = target_test_accuracy("codats", &tmp.path().join("codats"));
    let upper = target_test_accuracy("upper", &tmp.path().join("upper"));
    eprintln!("target-test accuracy 2 -> 11: none {none:.3}, codats {codats:.3}, upper {upper:.3}");
    assert!(none > 0.60, "none: {none}");
    // The adversarial game is still unsettled after 500 steps (λ is near 1 from step ~250), so
    // CoDATS' last weights swing more than source-only ones; 0.45 is still 2.7× chance.
    assert!(codats > 0.45, "codats: {codats}");
    assert!(upper > 0.85, "upper: {upper}");
    assert!(
        upper >= none && upper >= codats,
        "upper {upper} below none {none} / codats {codats}"
    );
}
