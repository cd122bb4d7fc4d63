//! Noisy Student end to end on the real scikit-learn digits (10 labels per class): the pipeline
//! trains a teacher and two students as ordinary run directories, each student's frozen
//! teacher is exactly its predecessor's evaluated weights, a pipeline interrupted inside a
//! student resumes to the same files as one never interrupted, and bad teachers are one-line
//! errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::cli::{err, ok};
use common::TempDir;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The pipeline's settings: 200 steps of batch 16 + 2×16 unlabelled per iteration.
const SETTINGS: &[&str] = &[
    "--dataset",
    "digits",
    "--labels-per-class",
    "10",
    "--steps",
    "200",
    "--batch-size",
    "16",
    "--uratio",
    "2",
    "--eval-every",
    "50",
    "--bn-momentum",
    "0.1",
    "--threads",
    "1",
    "-q",
];

/// `codats ssl noisy-student ARGS` run in `cwd` (so that the runs' recorded teacher paths,
/// relative to it, are the same in two folders); must succeed.
fn pipeline_in(cwd: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(["ssl", "noisy-student"])
        .args(args)
        .current_dir(cwd)
        // Absolute: the command runs in another folder than the test.
        .env(
            "CODATS_DATA_DIR",
            std::fs::canonicalize(common::real_data_root()).expect("the data folder"),
        )
        .output()
        .expect("run codats");
    assert!(
        o.status.success(),
        "codats ssl noisy-student {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file under `dir` (relative path → bytes), metrics.csv without its wall-clock column.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let name = rel.file_name().unwrap().to_str().unwrap().to_string();
            if name == "codats.lock" {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let bytes = if name == "metrics.csv" {
                String::from_utf8(bytes)
                    .unwrap()
                    .lines()
                    .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
                    .collect::<String>()
                    .into_bytes()
            } else {
                bytes
            };
            out.insert(rel, bytes);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// The tensors of a safetensors file whose names start with `prefix`, by the rest of the name.
fn tensors(path: &Path, prefix: &str) -> BTreeMap<String, Vec<f32>> {
    let all = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    all.into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix).map(|rest| {
                (
                    rest.to_string(),
                    v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                )
            })
        })
        .collect()
}

/// A metrics.csv column's values.
fn column(dir: &Path, name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| l.split(',').nth(i).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn students_learn_from_frozen_teachers_and_an_interrupted_pipeline_resumes_identically() {
    let tmp = TempDir::new("noisy-student");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    let mut args = SETTINGS.to_vec();
    args.extend(["--iterations", "2", "--out", "ns"]);
    pipeline_in(&a, &args);
    let whole = a.join("ns");

    // Three ordinary run directories; each student's config records its teacher.
    let summary = json(&whole.join("noisy_student.json"));
    let its = summary["iterations"].as_array().unwrap();
    assert_eq!(its.len(), 3);
    for (k, it) in its.iter().enumerate() {
        let dir = whole.join(format!("iter-{k}"));
        let r = json(&dir.join("result.json"));
        assert_eq!(r["method"], "noisy_student");
        assert_eq!(
            it["last"],
            r["selection"]["last"]["target_test"]["accuracy"]
        );
        let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        let teacher: toml::Value = toml::from_str(&cfg).unwrap();
        let teacher = teacher["images"].get("teacher");
        if k == 0 {
            assert!(teacher.is_none(), "iteration 0 has no teacher");
            continue;
        }
        let t = teacher.unwrap();
        assert_eq!(
            t["run"].as_str(),
            Some(format!("ns/iter-{}", k - 1).as_str())
        );
        assert_eq!(t["weights"].as_str(), Some("last"));
        // The teacher evaluated its EMA weights (ema_m 0.999): those label the pool, and are
        // the student's frozen `teacher.*` variables at its end, unchanged by training.
        assert_eq!(t["prefix"].as_str(), Some("ema."));
        let theirs = tensors(
            &whole.join(format!("iter-{}/checkpoints/last.safetensors", k - 1)),
            "ema.",
        );
        let frozen = tensors(&dir.join("checkpoints/last.safetensors"), "teacher.");
        assert!(!frozen.is_empty());
        assert_eq!(
            frozen,
            theirs,
            "iteration {k}'s teacher is not iteration {}'s",
            k - 1
        );
        // The teacher's labels of the pool (pool_nmi scores them against the hidden truth,
        // for evaluation only) are informative, and most pass the 0.3 filter.
        let nmi = column(&dir, "pool_nmi");
        assert!(nmi.iter().all(|&v| v == nmi[0] && v > 0.6), "{nmi:?}");
        let kept = column(&dir, "kept");
        assert!(kept[0] > 0.75 && kept[0] < 1.0, "{kept:?}");
    }
    // Iteration 0 trains on the labelled images alone; the students beat a floor on the 359
    // held-out test images (seeded; measured 84.96 %, 86.91 % and 84.96 % at this commit).
    let acc = |k: usize| its[k]["last"].as_f64().unwrap();
    assert!(acc(0) > 0.80, "teacher {}", acc(0));
    assert!(acc(1) > 0.82 && acc(2) > 0.80, "{} {}", acc(1), acc(2));

    // The same pipeline stopped inside iteration 1 (after its checkpoint at step 100) and
    // resumed: every file of every iteration is the same.
    std::fs::create_dir_all(b.join("ns")).unwrap();
    copy_dir(&whole.join("iter-0"), &b.join("ns/iter-0"));
    std::fs::copy(
        whole.join("noisy_student.toml"),
        b.join("ns/noisy_student.toml"),
    )
    .unwrap();
    pipeline_in(
        &b,
        &["--resume", "--out", "ns", "-q", "--stop-after", "120"],
    );
    let parts = b.join("ns");
    assert!(parts.join("iter-1/config.toml").exists());
    assert!(!parts.join("iter-1/result.json").exists());
    assert!(!parts.join("iter-2").exists());
    pipeline_in(&b, &["--resume", "--out", "ns", "-q"]);
    let (w, p) = (files(&whole), files(&parts));
    assert_eq!(
        w.keys().collect::<Vec<_>>(),
        p.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, bytes) in &w {
        assert!(&p[name] == bytes, "{} differs after resume", name.display());
    }

    // A finished pipeline resumes to nothing new, cannot shrink, and extends by iterations.
    let shrink = err(&[
        "ssl",
        "noisy-student",
        "--resume",
        "--out",
        whole.to_str().unwrap(),
        "--iterations",
        "1",
    ]);
    assert_eq!(
        shrink,
        "error: --iterations 1: the pipeline has 2 already (it can be extended, not shortened)"
    );
    let again = err(&[
        &["ssl", "noisy-student"][..],
        SETTINGS,
        &["--out", whole.to_str().unwrap()],
    ]
    .concat());
    assert_eq!(
        again,
        format!(
            "error: {0} holds a Noisy Student pipeline already: continue it with `codats ssl \
             noisy-student --resume --out {0}`",
            whole.display()
        )
    );
}

/// `codats ssl train` on digits with 10 labels per class and `extra`.
fn train(extra: &[&str]) -> Vec<String> {
    [
        "ssl",
        "train",
        "--dataset",
        "digits",
        "--labels-per-class",
        "10",
        "--steps",
        "20",
        "--batch-size",
        "16",
        "--uratio",
        "2",
        "--eval-every",
        "10",
        "--threads",
        "1",
        "-q",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_teacher_must_be_a_finished_run_of_the_same_images() {
    let tmp = TempDir::new("noisy-teacher");
    let teacher = tmp.path().join("teacher");
    let t = teacher.to_str().unwrap();
    // Raw weights evaluated (ema_m 0): 20 steps leave a 0.999 EMA near its initialisation,
    // whose uniform predictions no image would pass the confidence filter with.
    ok(&strs(&train(&[
        "--method",
        "supervised",
        "--param",
        "ema_m=0",
        "--out",
        t,
    ])));
    let student = tmp.path().join("student");
    let s = student.to_str().unwrap();

    // Another seed draws other labelled images: the teacher may have trained on images this
    // run treats as unlabelled.
    let e = err(&strs(&train(&[
        "--method",
        "noisy_student",
        "--seed",
        "1",
        "--teacher",
        t,
        "--out",
        s,
    ])));
    assert_eq!(
        e,
        format!(
            "error: --teacher {t}: its labelled images are not this run's (give the teacher's \
             --dataset, --seed, --split-seed, --labels-per-class, --valid-size and --test-fraction)"
        )
    );
    assert!(!student.exists(), "a refused run leaves nothing behind");
    let e = err(&strs(&train(&[
        "--method",
        "fixmatch",
        "--teacher",
        t,
        "--out",
        s,
    ])));
    assert_eq!(
        e,
        "error: --teacher: method fixmatch learns from no teacher (noisy_student does)"
    );

    // An unfinished teacher has no weights to trust yet.
    let unfinished = tmp.path().join("unfinished");
    let u = unfinished.to_str().unwrap();
    ok(&strs(&train(&[
        "--method",
        "supervised",
        "--out",
        u,
        "--stop-after",
        "15",
    ])));
    let e = err(&strs(&train(&[
        "--method",
        "noisy_student",
        "--teacher",
        u,
        "--out",
        s,
    ])));
    assert_eq!(
        e,
        format!(
            "error: --teacher {u}: the run is not finished (no result.json); finish it with \
             `codats ssl train --resume --out {u}`"
        )
    );

    // A supervised teacher teaches a student (its raw weights label the pool). Once the
    // student has a checkpoint, it holds the teacher: a resume reads the teacher's files no
    // more. A student killed before its first checkpoint starts over and reads them again,
    // and weights changed since the run was configured are refused.
    ok(&strs(&train(&[
        "--method",
        "noisy_student",
        "--teacher",
        t,
        "--out",
        s,
        "--stop-after",
        "15",
    ])));
    let cfg = std::fs::read_to_string(student.join("config.toml")).unwrap();
    assert!(cfg.contains("[images.teacher]"), "{cfg}");
    assert!(cfg.contains("prefix = \"model.\""), "{cfg}");
    let weights = teacher.join("checkpoints/last.safetensors");
    let mut changed = std::fs::read(&weights).unwrap();
    changed.push(0);
    std::fs::write(&weights, &changed).unwrap();
    let early = tmp.path().join("early");
    copy_dir(&student, &early);
    std::fs::remove_dir_all(early.join("checkpoints")).unwrap();
    let e = err(&[
        "ssl",
        "train",
        "--resume",
        "-q",
        "--out",
        early.to_str().unwrap(),
    ]);
    assert!(
        e.starts_with(&format!(
            "error: the teacher's weights {} changed since this run was configured (sha256 ",
            weights.display()
        )),
        "{e}"
    );
    ok(&["ssl", "train", "--resume", "-q", "--out", s]);
    let r = json(&student.join("result.json"));
    assert_eq!(
        (r["method"].as_str(), r["steps"].as_u64()),
        (Some("noisy_student"), Some(20))
    );
}
