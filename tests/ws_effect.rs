//! DA-WS end to end on the built-in synthetic data: `codats_ws` trains differently from `codats`
//! with the same seed and batch division, and it pulls the predicted target label distribution
//! towards the proportions it is given.

use std::path::Path;
use std::process::Command;

mod common;

fn train(out: &Path, method: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--dataset",
        "synthetic",
        "--sources",
        "1,2",
        "--target",
        "0",
        "--steps",
        "60",
        "--eval-every",
        "20",
        "--batch-division",
        "all",
        "--threads",
        "1",
        "--seed",
        "0",
        "-q",
        "--method",
        method,
        "--out",
    ];
    args.push(out.to_str().expect("utf-8 path"));
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(&args)
        .output()
        .expect("run codats");
    assert!(
        o.status.success(),
        "codats {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn last_weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoints/last.safetensors")).expect("last weights")
}

/// Predicted label distribution of the `last` weights on the target's test split.
fn predicted_distribution(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("result.json")).expect("result.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid result.json");
    let conf = v["selection"]["last"]["target_test"]["confusion"]
        .as_array()
        .expect("confusion matrix");
    let k = conf.len();
    let mut cols = vec![0f64; k];
    for row in conf {
        for (j, c) in row.as_array().expect("row").iter().enumerate() {
            cols[j] += c.as_f64().expect("count");
        }
    }
    let n: f64 = cols.iter().sum();
    cols.iter().map(|c| c / n).collect()
}

/// L1 distance between two distributions (twice the total variation).
fn l1(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum()
}

#[test]
fn codats_ws_pulls_target_predictions_towards_the_given_proportions() {
    let tmp = common::TempDir::new("ws-effect");
    let props = [0.9, 0.05, 0.05];
    let p_arg = "0.9,0.05,0.05";
    let plain = tmp.path().join("codats");
    let ws = tmp.path().join("codats_ws");
    train(&plain, "codats", &[]);
    train(&ws, "codats_ws", &["--target-proportions", p_arg]);
    assert_ne!(
        last_weights(&plain),
        last_weights(&ws),
        "codats_ws ended with the same weights as codats"
    );
    let (q_plain, q_ws) = (predicted_distribution(&plain), predicted_distribution(&ws));
    // Predicted labels (argmax) rather than mean probabilities: result.json has the former.
    let (d_plain, d_ws) = (l1(&props, &q_plain), l1(&props, &q_ws));
    assert!(
        d_ws < 0.5 * d_plain && q_ws[0] > q_plain[0],
        "DA-WS should move the target predictions towards {props:?}: \
         codats predicts {q_plain:?} (L1 {d_plain:.3}), codats_ws {q_ws:?} (L1 {d_ws:.3})"
    );
}

#[test]
fn ws_noise_changes_what_codats_ws_trains_on() {
    let tmp = common::TempDir::new("ws-noise");
    let exact = tmp.path().join("exact");
    let noisy = tmp.path().join("noisy");
    train(&exact, "codats_ws", &[]);
    train(&noisy, "codats_ws", &["--ws-noise", "0.5"]);
    assert_ne!(
        last_weights(&exact),
        last_weights(&noisy),
        "--ws-noise had no effect"
    );
}
