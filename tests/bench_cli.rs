//! `codats bench --json`: the interface scripts rely on (one JSON line per configuration with
//! `samples_per_s`, `ms_per_step`, per-phase times, per-round times, and the paired ratio).
//! A stand-in anchor (a shell script printing a fixed PyTorch line) makes the ratio checkable
//! without torch; timings themselves are never asserted.

use std::process::Command;

use codats::bench::median;

mod common;

/// A JSON array of numbers.
fn floats(v: &serde_json::Value) -> Vec<f64> {
    let a = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    a.iter().map(|x| x.as_f64().expect("a number")).collect()
}

#[test]
fn json_lines_carry_phases_rounds_and_the_median_paired_ratio() {
    let tmp = common::TempDir::new("bench-json");
    let anchor = tmp.path().join("anchor.sh");
    std::fs::write(
        &anchor,
        "echo '{\"framework\": \"pytorch\", \"batch\": 8, \"ms_per_step\": 1000.0, \"samples_per_s\": 8.0}'\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args([
            "bench",
            "--json",
            "--train-only",
            "--batch",
            "8",
            "--sources",
            "3",
        ])
        .args([
            "--threads",
            "1",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--rounds",
            "3",
        ])
        .args(["--torch-python", "/bin/sh", "--anchor"])
        .arg(&anchor)
        .output()
        .expect("run codats bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let find = |framework: &str| {
        lines
            .iter()
            .find(|l| l["framework"] == framework)
            .unwrap_or_else(|| panic!("no {framework} line in {stdout}"))
    };
    let ours = find("codats");
    assert_eq!(ours["what"], "train_step");
    assert_eq!(ours["batch"], 8);
    let ms = ours["ms_per_step"].as_f64().unwrap();
    assert!(ms > 0.0 && ours["samples_per_s"].as_f64().unwrap() > 0.0);
    // three rounds, and the reported one is their median
    let rounds = floats(&ours["rounds_ms"]);
    assert_eq!(rounds.len(), 3);
    assert_eq!(Some(ms), median(&rounds));
    // forward + backward + optimiser make up the step (97-99.5 % measured at this tiny batch;
    // the rest is handing the step to a rayon worker); the kernels' phases lie inside them. The
    // lower bound leaves room for a loaded machine and still catches a phase that is not timed
    // (backward alone is about two thirds of a step).
    let phase = |name: &str| {
        ours["phases_ms"][name]
            .as_f64()
            .unwrap_or_else(|| panic!("no phase {name}"))
    };
    let parts = phase("forward") + phase("backward") + phase("optimiser");
    assert!(parts <= ms * 1.001 && parts > 0.6 * ms, "{parts} vs {ms}");
    assert!(phase("conv") > 0.0 && phase("conv") < parts);
    for p in ["bn_forward", "bn_backward", "head_forward", "head_backward"] {
        assert!(phase(p) > 0.0, "{p}");
    }
    assert_eq!(find("pytorch")["ms_per_step"], 1000.0);
    let ratio = find("ratio");
    let paired = floats(&ratio["rounds"]);
    assert_eq!(paired.len(), 3);
    let r = ratio["codats_over_pytorch_samples_per_s"].as_f64().unwrap();
    assert!(
        (r - median(&paired).unwrap()).abs() < 1e-9,
        "{r} vs {paired:?}"
    );
    // each round's ratio is that round's codats samples/s over the anchor's 8 samples/s
    for (ms, p) in rounds.iter().zip(&paired) {
        assert!(
            (8.0 / (ms / 1e3) / 8.0 - p).abs() < 1e-6 * p,
            "{ms} ms vs ratio {p}"
        );
    }
}
