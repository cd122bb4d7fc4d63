//! The DA baselines run end to end on the real UCI HAR archive, pair 2 → 11: Deep CORAL, MMD
//! and DANN-GS for 500 steps each in one test, MDAN, CDAN, HoMM, DSAN and CoTMix for 400 steps
//! in one test each. Each trains (accuracy far above chance), logs its alignment loss in
//! metrics.csv, and saves its parameters in config.toml.

use std::path::Path;
use std::process::Command;

mod common;

/// (method, its loss column in metrics.csv, its weight parameter if it has one)
const METHODS: &[(&str, &str, Option<&str>)] = &[
    ("coral", "coral_loss", Some("coral_weight")),
    ("mmd", "mmd_loss", Some("mmd_weight")),
    ("dann_gs", "domain_loss", None),
];

/// The column `name` of a metrics.csv, one value per evaluation.
fn column(csv: &str, name: &str) -> Vec<f64> {
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let i = header.iter().position(|h| *h == name).expect(name);
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(i).expect("field").parse().expect("number"))
        .collect()
}

fn train(out: &Path, method: &str, extra: &[&str]) {
    train_for(out, method, "500", extra)
}

fn train_for(out: &Path, method: &str, steps: &str, extra: &[&str]) {
    train_threads(out, method, steps, "2", extra)
}

fn train_threads(out: &Path, method: &str, steps: &str, threads: &str, extra: &[&str]) {
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
            threads,
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
        // The label-free importance-weighted rules sit beside the others, each having kept the
        // weights of one of the evaluations (steps 0, 100, .., 500).
        let rules: Vec<&String> = r["selection"].as_object().unwrap().keys().collect();
        assert_eq!(
            rules,
            [
                "best_source",
                "best_target",
                "dev",
                "iwv",
                "last",
                "source_risk"
            ],
            "{method}"
        );
        for rule in ["iwv", "dev"] {
            let step = r["selection"][rule]["step"].as_u64().expect("step");
            assert!(
                step % 100 == 0 && step <= 500,
                "{method} {rule}: step {step}"
            );
            let a = r["selection"][rule]["target_test"]["accuracy"]
                .as_f64()
                .unwrap();
            eprintln!("{method}: {rule} picked step {step}: {a:.3}");
            assert!(out
                .join(format!("checkpoints/{rule}.safetensors"))
                .is_file());
        }
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
    short_run_for(method, column, floor, 400, "2");
}

/// [`short_run`] for `steps` steps (a multiple of 100) on `threads` threads; returns metrics.csv.
fn short_run_for(method: &str, column: &str, floor: f64, steps: usize, threads: &str) -> String {
    let tmp = common::TempDir::new(&format!("da-short-{method}"));
    let out = tmp.path().join(method);
    train_threads(&out, method, &steps.to_string(), threads, &[]);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
            .expect("json");
    let acc = r["selection"]["last"]["target_test"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    eprintln!("{method}: 2 -> 11 target-test accuracy {acc:.3} after {steps} steps");
    assert!(acc > floor, "{method}: {acc} (chance is 1/6)");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics.csv");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("{method}: no {column} in {header:?}"));
    let rows = csv.lines().skip(1).count();
    assert_eq!(
        rows,
        steps / 100 + 1,
        "{method}: evaluations at steps 0, 100, .., {steps}"
    );
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
    csv
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
fn advskm_trains_on_ucihar() {
    // 400 steps, one thread (seed 0, 2 -> 11): 60.9 % target-test accuracy (every rule picks
    // step 400), 95.1 % on the source test split. AdaTime also ranks AdvSKM last on HAR.
    short_run_for("advskm", "mmd_loss", 0.55, 400, "1");
}

#[test]
fn dirt_t_trains_on_ucihar_through_both_phases() {
    // 300 steps, one thread, vada_fraction 0.5: VADA for steps 0..=149, DIRT-T from 150.
    // Measured (seed 0, 2 -> 11): 35.9 % target-test accuracy at step 300 (the last rule),
    // 37.5 % at step 0 (the other rules). 150 VADA steps are too few to adapt: the DA
    // baselines here collapse to one class around steps 50-100 before they recover by ~400,
    // and the DIRT-T phase refines whatever VADA left. This checks both phases run and train;
    // the accuracy of a full-length run is the sweep's job (issue 14, item 5).
    let csv = short_run_for("dirt_t", "teacher_kl", 0.3, 300, "1");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().expect("number")).collect())
        .collect();
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    assert_eq!(first[col("phase")], 1.0, "VADA first");
    assert_eq!(first[col("teacher_kl")], 0.0);
    assert!(first[col("domain_loss")] > 0.0 && first[col("vat_loss")] > 0.0);
    assert_eq!(last[col("phase")], 2.0, "DIRT-T last");
    assert!(
        last[col("teacher_kl")] > 0.0,
        "the teacher's KL is trained on"
    );
    assert_eq!(last[col("domain_loss")], 0.0, "no adversary in DIRT-T");
}

#[test]
fn dann_gs_with_ws_trains_with_the_da_ws_term() {
    // `--ws` composes DA-WS onto DANN-GS: 100 steps, one thread, proportions moved by 0.1
    // (seed 0, 2 -> 11). Measured: ws_loss 0.0650 at step 0, 0.0238 averaged over steps 1..100.
    // 100 steps are too few for accuracy (21.9 % target test; the DA baselines need ~400), so
    // this checks the composition: the column, the loss being the sum of its terms, the term
    // going down.
    let tmp = common::TempDir::new("da-ws");
    let out = tmp.path().join("dann_gs-ws");
    train_threads(&out, "dann_gs", "100", "1", &["--ws", "--ws-noise", "0.1"]);
    let cfg = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(
        cfg.ends_with("[method]\nname = \"dann_gs\"\nws_noise = 0.1\nws = true\n"),
        "{cfg}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics.csv");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    assert_eq!(
        header[..6],
        [
            "step",
            "loss",
            "task_loss",
            "domain_loss",
            "lambda",
            "ws_loss"
        ]
    );
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().expect("number")).collect())
        .collect();
    assert_eq!(rows.len(), 2, "evaluations at steps 0 and 100");
    for r in &rows {
        assert!(r[5].is_finite() && r[5] > 0.0, "ws_loss {}", r[5]);
        // The logged loss is the sum of its terms (DANN-GS's GRL leaves the domain loss +1 ×).
        assert!((r[1] - (r[2] + r[3] + r[5])).abs() < 1e-4, "{r:?}");
    }
    assert!(
        rows[1][5] < 0.5 * rows[0][5],
        "ws_loss {} -> {}",
        rows[0][5],
        rows[1][5]
    );
    assert!(out.join("result.json").exists());
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

/// The other feature extractors on UCI HAR (seed 0, 2 → 11, one thread, lr 1e-3): CoDATS on
/// AdaTime's CNN for 200 steps, and R-DANN (CoDATS's loss on the GRU) for 100.
#[test]
fn codats_on_adatime_cnn_and_rdann_on_the_gru_train_on_ucihar() {
    let tmp = common::TempDir::new("da-backbones");
    let acc = |out: &Path, rule: &str| -> f64 {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
                .expect("json");
        r["selection"][rule]["target_test"]["accuracy"]
            .as_f64()
            .expect("accuracy")
    };
    let cnn = tmp.path().join("adatime-cnn");
    train_threads(&cnn, "codats", "200", "1", &["--backbone", "adatime-cnn"]);
    let cfg = std::fs::read_to_string(cnn.join("config.toml")).expect("config.toml");
    assert!(cfg.contains("\nbackbone = \"adatime-cnn\"\n"), "{cfg}");
    eprintln!(
        "codats --backbone adatime-cnn: last {:.3}, source_risk {:.3}",
        acc(&cnn, "last"),
        acc(&cnn, "source_risk")
    );
    let gru = tmp.path().join("rdann");
    train_threads(&gru, "rdann", "100", "1", &[]);
    let cfg = std::fs::read_to_string(gru.join("config.toml")).expect("config.toml");
    assert!(
        cfg.contains("\nbackbone = \"gru\"\n"),
        "rdann picks the GRU: {cfg}"
    );
    eprintln!(
        "rdann: last {:.3}, source_risk {:.3}",
        acc(&gru, "last"),
        acc(&gru, "source_risk")
    );
    // Measured: 85.9 % (adatime-cnn, last and source_risk) and 45.3 % (rdann): the GRU on raw
    // 128-step windows learns far more slowly than the convolutional extractors.
    assert!(
        acc(&cnn, "last") > 0.7,
        "adatime-cnn: {}",
        acc(&cnn, "last")
    );
    assert!(
        acc(&gru, "last") > 0.3,
        "rdann: {} (chance is 1/6)",
        acc(&gru, "last")
    );
}

/// `dirt_t --param refresh_every=3`: the teacher becomes the current network after every third
/// DIRT-T step, so a run equals the frozen-teacher run until the first refresh (after step 8 of
/// 0..=12, the switch being at 6) and its teacher KL differs from then on.
#[test]
fn dirt_t_refreshes_its_teacher_every_n_refinement_steps() {
    let tmp = common::TempDir::new("dirt-t-refresh");
    let kl = |extra: &[&str], name: &str| -> Vec<String> {
        let out = tmp.path().join(name);
        let mut args = vec![
            "train",
            "--dataset",
            "synthetic",
            "--sources",
            "1,2",
            "--target",
            "3",
            "--method",
            "dirt_t",
            "--steps",
            "12",
            "--eval-every",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--out",
        ];
        let o = out.to_str().expect("utf-8").to_string();
        args.push(&o);
        args.extend_from_slice(extra);
        let r = Command::new(env!("CARGO_BIN_EXE_codats"))
            .args(&args)
            .output()
            .expect("run codats");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let csv = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics.csv");
        let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == "teacher_kl")
            .expect("teacher_kl");
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').nth(col).expect("field").to_string())
            .collect()
    };
    let frozen = kl(&[], "frozen");
    let refreshed = kl(&["--param", "refresh_every=3"], "refreshed");
    assert_eq!(frozen.len(), 13);
    assert_eq!(
        frozen[..9],
        refreshed[..9],
        "the same until the first refresh"
    );
    for step in 9..13 {
        assert_ne!(frozen[step], refreshed[step], "step {step}");
    }
}

/// `--few-shot 5` adds the few-shot selection rule: result.json records its 30 windows (5 of
/// each of the 6 classes), all from the target's training split, the same for every method of
/// the problem (drawn by the split seed, not the run's), and the rule kept the weights of one
/// of the evaluations.
#[test]
fn few_shot_selection_scores_five_labelled_target_windows_per_class() {
    let tmp = common::TempDir::new("da-few-shot");
    let a = tmp.path().join("codats");
    let b = tmp.path().join("none");
    train_for(&a, "codats", "200", &["--few-shot", "5"]);
    train_for(&b, "none", "100", &["--few-shot", "5"]);
    let read = |p: &Path, f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join(f)).expect(f)).expect("json")
    };
    let (ra, rb) = (read(&a, "result.json"), read(&b, "result.json"));
    let windows: Vec<u64> = ra["few_shot_windows"]
        .as_array()
        .expect("few_shot_windows")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(windows.len(), 30);
    assert!(windows.windows(2).all(|w| w[0] < w[1]), "{windows:?}");
    assert_eq!(ra["few_shot_windows"], rb["few_shot_windows"]);
    let splits = read(&a, "splits.json");
    let train: Vec<u64> = splits["11"]["train"]
        .as_array()
        .expect("target 11's train split")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(windows.iter().all(|w| train.contains(w)), "{windows:?}");
    let step = ra["selection"]["few_shot"]["step"].as_u64().unwrap();
    assert!(step % 100 == 0 && step <= 200, "{step}");
    assert!(a.join("checkpoints/few_shot.safetensors").is_file());
    let acc = ra["selection"]["few_shot"]["target_test"]["accuracy"]
        .as_f64()
        .unwrap();
    // Seed 0 reaches 50.0 % at step 200 (chance is 1/6).
    eprintln!("codats 2 -> 11, 200 steps: few_shot picked step {step}: {acc:.3}");
    assert!(acc > 0.35, "{acc}");
    let cfg = std::fs::read_to_string(a.join("config.toml")).unwrap();
    assert!(cfg.contains("few_shot = 5\n"), "{cfg}");
}

/// VRADA (CoDATS's adversarial loss on the variational RNN, plus its ELBO): 200 steps, one
/// thread, seed 0, 2 → 11. It picks the VRNN, logs the ELBO's KL (≥ 0) and reconstruction
/// NLL terms at every evaluation, and the NLL falls as the decoder learns the windows.
#[test]
fn vrada_trains_the_vrnn_with_its_elbo_on_ucihar() {
    let tmp = common::TempDir::new("da-vrada");
    let out = tmp.path().join("vrada");
    train_threads(&out, "vrada", "200", "1", &[]);
    let cfg = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(
        cfg.contains("\nbackbone = \"vrnn\"\n"),
        "vrada picks the VRNN: {cfg}"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
            .expect("json");
    let acc = r["selection"]["last"]["target_test"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    eprintln!("vrada: 2 -> 11 target-test accuracy {acc:.3} after 200 steps");
    // Measured: 60.9 % (binary of the commit that added VRADA).
    assert!(acc > 0.5, "vrada: {acc} (chance is 1/6)");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics.csv");
    let col = |name: &str| column(&csv, name);
    let (kl, nll) = (col("vrnn_kl"), col("vrnn_nll"));
    assert_eq!(kl.len(), 3, "evaluations at steps 0, 100, 200");
    assert!(kl.iter().all(|v| v.is_finite() && *v >= 0.0), "{kl:?}");
    assert!(nll.iter().all(|v| v.is_finite()), "{nll:?}");
    assert!(
        nll[2] < nll[0] - 0.5,
        "the reconstruction improves: {nll:?}"
    );
}

/// CoTMix (temporal mixup + supervised and NT-Xent contrastive losses + target entropy): 400
/// steps, two threads, seed 0, 2 → 11. It trains far above chance and logs each of its three
/// auxiliary losses, finite and positive, at every evaluation; the target's contrastive loss
/// falls as the two views of each target window come together.
#[test]
fn cotmix_trains_with_its_mixup_views_on_ucihar() {
    // Measured (binary of the commit that added CoTMix): 73.4 % target-test accuracy under
    // `last`, `source_risk` and `dev` (step 400), 75.0 % under the oracle (step 300).
    let csv = short_run_for("cotmix", "contrast_loss", 0.6, 400, "2");
    let col = |name: &str| column(&csv, name);
    for name in ["entropy_loss", "supcon_loss", "contrast_loss"] {
        let v = col(name);
        assert!(v.iter().all(|x| x.is_finite() && *x > 0.0), "{name}: {v:?}");
    }
    let contrast = col("contrast_loss");
    assert!(
        contrast[4] < contrast[0] - 0.5,
        "the target views come together: {contrast:?}"
    );
}
