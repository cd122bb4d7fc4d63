//! Rotation pretext and the probes on the real scikit-learn digits: `--method rotation` learns
//! to tell the four rotations apart without labels, `codats ssl probe` scores its frozen backbone
//! with the linear and kNN probes (and the same network at its random initialisation), the same
//! seed gives the same probe accuracies, and bad probe requests are one-line errors.

use std::path::Path;

mod common;
use common::cli::{err, ok};
use common::TempDir;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rotation_run(out: &str, steps: &str) -> Vec<String> {
    [
        "ssl",
        "train",
        "--dataset",
        "digits",
        "--labels-per-class",
        "10",
        "--method",
        "rotation",
        "--steps",
        steps,
        "--batch-size",
        "16",
        "--uratio",
        "4",
        "--eval-every",
        "100",
        "--threads",
        "2",
        "-q",
        "--out",
        out,
    ]
    .map(String::from)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn rotation_learns_its_pretext_and_the_probes_score_its_backbone() {
    let tmp = TempDir::new("ssl-probe");
    let run = tmp.path().join("rot");
    let run_s = run.to_str().unwrap();
    ok(&strs(&rotation_run(run_s, "300")));
    // The pretext is learnt: the last evaluation window's rotation accuracy is far above the
    // 25 % of guessing (seed 0 reaches about 0.9 on digits by step 300).
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|c| *c == "rot_acc")
        .expect("rot_acc");
    let last: f64 = csv
        .lines()
        .last()
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .parse()
        .unwrap();
    assert!(last > 0.6, "rotation accuracy {last} at step 300");
    // The online head (detached features of the 100 labelled images) is what result.json scores.
    let r = json(&run.join("result.json"));
    let online = r["selection"]["last"]["target_test"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(online > 0.3, "online linear head {online}");

    let out = ok(&["ssl", "probe", run_s, "--threads", "2"]);
    assert!(
        out.contains("linear probe:") && out.contains("kNN probe:"),
        "{out}"
    );
    let p = json(&run.join("probe.json"));
    assert_eq!(p["weights"], "last");
    // 1 797 images: 359 test, the rest (labelled + unlabelled pools, validation aside) train.
    assert_eq!(p["test_images"], 359);
    let linear = p["linear"]["accuracy"].as_f64().unwrap();
    let knn = p["knn"]["accuracy"].as_f64().unwrap();
    assert!(linear > 0.85 && knn > 0.75, "linear {linear}, kNN {knn}");
    assert_eq!(p["knn"]["k"], 20);
    assert_eq!(p["knn"]["temperature"], 0.07);

    // Seeded: probing again gives the same accuracies.
    let again = tmp.path().join("again.json");
    ok(&[
        "ssl",
        "probe",
        run_s,
        "--threads",
        "2",
        "--out",
        again.to_str().unwrap(),
    ]);
    let q = json(&again);
    assert_eq!(q["linear"], p["linear"]);
    assert_eq!(q["knn"], p["knn"]);

    // The random-initialisation baseline of the same network, written beside it.
    ok(&[
        "ssl",
        "probe",
        run_s,
        "--random-init",
        "--probe",
        "linear",
        "--threads",
        "2",
    ]);
    let rnd = json(&run.join("probe-random.json"));
    assert_eq!(rnd["weights"], "random_init");
    assert!(rnd.get("knn").is_none());
    assert_eq!(rnd["feature_dim"], p["feature_dim"]);
    assert_ne!(rnd["linear"]["accuracy"], p["linear"]["accuracy"]);

    // Every image method exposes its backbone to the probes.
    let fm = tmp.path().join("fixmatch");
    let mut a = rotation_run(fm.to_str().unwrap(), "20");
    a[7] = "fixmatch".into();
    ok(&strs(&a));
    ok(&[
        "ssl",
        "probe",
        fm.to_str().unwrap(),
        "--probe",
        "knn",
        "--threads",
        "2",
    ]);
    assert!(
        json(&fm.join("probe.json"))["knn"]["accuracy"]
            .as_f64()
            .unwrap()
            > 0.1
    );
}

#[test]
fn bad_probe_requests_are_one_line_errors() {
    let tmp = TempDir::new("ssl-probe-bad");
    let run = tmp.path().join("rot");
    let run_s = run.to_str().unwrap();
    // Stopped before its end, without final weights.
    let mut a = rotation_run(run_s, "40");
    a.extend(["--stop-after".to_string(), "10".to_string()]);
    ok(&strs(&a));
    let e = err(&["ssl", "probe", run_s]);
    assert_eq!(
        e,
        format!(
            "error: {run_s} has no checkpoints/last.safetensors: the probes need the run's trained \
             backbone (finish the run with `codats ssl train --resume --out {run_s}`, or probe --random-init)"
        )
    );
    let e = err(&["ssl", "probe", run_s, "--weights", "best"]);
    assert_eq!(
        e,
        "error: --weights best: not a selection rule (choose from last, best_source, source_risk, iwv, dev, few_shot, best_target)"
    );
    let missing = tmp.path().join("nothing");
    let e = err(&["ssl", "probe", missing.to_str().unwrap()]);
    assert!(e.contains("config.toml"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // A time-series run has no image backbone.
    let ts = tmp.path().join("ts");
    ok(&[
        "train",
        "--dataset",
        "synthetic",
        "--sources",
        "1,2",
        "--target",
        "3",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "-q",
        "--out",
        ts.to_str().unwrap(),
    ]);
    let e = err(&["ssl", "probe", ts.to_str().unwrap()]);
    assert_eq!(
        e,
        format!(
            "error: {}: probes read an image backbone; this is a time-series run (codats on synthetic)",
            ts.display()
        )
    );
}
