//! The leak guard: target labels reach a method only through a named permission.
//!
//! Every registered method trains twice on the same problem, once as it is and once with the
//! labels of the target's *training* windows poisoned (each moved to another class; the image
//! half: the unlabelled pool's hidden labels). The splits, the validation and test labels and
//! every seed are the same, so a method that never reads the labels it is denied writes the
//! same run directory both times: every checkpoint and best-weights file byte for byte,
//! result.json, and metrics.csv (its throughput column aside). The permissions are the
//! exceptions, and each must show that the poison did reach it:
//!
//! * `target_only`, the train-on-target bound, trains on target labels by definition;
//! * DA-WS (`codats_ws`, `--ws`) reads the target's label proportions unless the user gives
//!   them (`--target-proportions`): given, the runs are identical; not given, they differ;
//! * `--few-shot K` reads K labelled target windows per class for its rule, drawn by those
//!   labels: its weights, its result.json entry and the windows it records change, nothing else;
//! * `pool_nmi`, the evaluation-only NMI of a self-labelling method's labels (or a Noisy
//!   Student teacher's) against the pool's hidden truth, is the one metrics.csv column that
//!   changes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codats::config::{code_version, ImageOptions, MethodConfig, TrainConfig};
use codats::data::batch::BatchDivision;
use codats::methods::{MethodKind, TargetUse, Task};
use codats::nn::backbones::ImageBackbone;
use codats::nn::Kernels;
use codats::problem::Problem;
use codats::train::{RunOptions, Trainer};

/// The target's training labels, each moved by 1 to C − 1 classes depending on its position:
/// a valid label, never the true one, and not a relabelling of the classes (which NMI, say,
/// would not notice).
fn poison(problem: &mut Problem) {
    let classes = problem.n_classes() as u32;
    assert!(
        classes >= 3,
        "the poison needs 3 classes to move labels apart"
    );
    let train = problem.target.split.train.clone();
    assert!(!train.is_empty());
    for (k, i) in train.into_iter().enumerate() {
        let shift = 1 + (k as u32) % (classes - 1);
        problem.target.y[i] = (problem.target.y[i] + shift) % classes;
    }
}

/// A small time-series run of `method` on the embedded synthetic data (sources 1, 2; target 0).
fn series_config(method: MethodConfig) -> TrainConfig {
    let backbone = method.name.info().backbone.unwrap_or_default();
    TrainConfig {
        dataset: "synthetic".into(),
        data_dir: None,
        sources: vec![1, 2],
        target: 0,
        method,
        steps: 12,
        batch_size: 16,
        batch_division: BatchDivision::All,
        lr: 1e-3,
        seed: 3,
        split_seed: 0,
        eval_every: 4,
        checkpoint_every: 6,
        threads: 1,
        kernels: Kernels::Fast,
        gct: false,
        backbone,
        data: Default::default(),
        images: None,
        few_shot: 0,
        code_version: code_version(),
        conventions: codats::config::CONVENTIONS,
    }
}

/// A small image run of `method` on scikit-learn's digits (4 labels per class).
fn image_config(method: MethodConfig) -> TrainConfig {
    TrainConfig {
        dataset: "digits".into(),
        data_dir: Some(common::real_dataset("sklearn_digits")),
        sources: vec![1],
        target: 0,
        method,
        steps: 8,
        batch_size: 8,
        batch_division: BatchDivision::None,
        lr: 0.03,
        seed: 3,
        split_seed: 0,
        eval_every: 4,
        checkpoint_every: 4,
        threads: 1,
        kernels: Kernels::Fast,
        gct: false,
        backbone: Default::default(),
        data: Default::default(),
        images: Some(ImageOptions {
            labels_per_class: 4,
            unlabelled_limit: Some(400),
            test_fraction: 0.2,
            valid_size: 100,
            uratio: 2,
            backbone: ImageBackbone::SmallCnn,
            gct: false,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            cosine: true,
            bn_momentum: 0.001,
            resize: None,
            color: Default::default(),
            teacher: None,
        }),
        few_shot: 0,
        code_version: code_version(),
        conventions: codats::config::CONVENTIONS,
    }
}

/// Trains `cfg` in `out` (target training labels poisoned when `poisoned`) and returns the run
/// directory's files: path → bytes, metrics.csv as its rows of `column → value`.
fn run(cfg: &TrainConfig, out: &Path, poisoned: bool) -> RunFiles {
    let checked = cfg.clone().check().unwrap();
    let mut problem = codats::cli::load_problem(cfg, None, true, true, true).unwrap();
    if poisoned {
        poison(&mut problem);
    }
    Trainer::new(checked, problem, out)
        .unwrap()
        .run(RunOptions::default())
        .unwrap()
        .expect("the run finishes");
    RunFiles::read(out)
}

#[derive(Debug, PartialEq)]
struct RunFiles {
    /// Every file but metrics.csv, by path relative to the run directory.
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// metrics.csv's rows, without the throughput column.
    metrics: Vec<BTreeMap<String, String>>,
}

impl RunFiles {
    fn read(dir: &Path) -> RunFiles {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().unwrap() != "metrics.csv" {
                    files.insert(
                        p.strip_prefix(dir).unwrap().to_path_buf(),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let metrics = lines
            .map(|l| {
                header
                    .iter()
                    .zip(l.split(','))
                    .filter(|(c, _)| **c != "steps_per_s")
                    .map(|(c, v)| (c.to_string(), v.to_string()))
                    .collect()
            })
            .collect();
        RunFiles { files, metrics }
    }

    /// The same files and metrics with `column` left out of every row.
    fn without(mut self, column: &str) -> RunFiles {
        self.metrics.iter_mut().for_each(|r| {
            r.remove(column);
        });
        self
    }

    /// The same files without what the few-shot rule (a named permission) kept: its
    /// checkpoint and its result.json entries; and the windows it recorded.
    fn without_few_shot(mut self) -> (RunFiles, serde_json::Value) {
        self.files
            .remove(Path::new("checkpoints/few_shot.safetensors"))
            .expect("the few-shot rule's weights");
        let path = PathBuf::from("result.json");
        let mut r: serde_json::Value = serde_json::from_slice(&self.files[&path]).unwrap();
        let windows = r
            .as_object_mut()
            .unwrap()
            .remove("few_shot_windows")
            .unwrap();
        r["selection"]
            .as_object_mut()
            .unwrap()
            .remove("few_shot")
            .unwrap();
        self.files.insert(path, serde_json::to_vec(&r).unwrap());
        // The resumable state keeps the rule's best score (and the manifest hashes the state).
        let path = PathBuf::from("checkpoints/resume/state.json");
        let mut st: serde_json::Value = serde_json::from_slice(&self.files[&path]).unwrap();
        st.as_object_mut().unwrap().remove("few_shot").unwrap();
        self.files.insert(path, serde_json::to_vec(&st).unwrap());
        self.files
            .remove(Path::new("checkpoints/resume/manifest.json"))
            .unwrap();
        (self, windows)
    }

    fn column(&self, column: &str) -> Vec<Option<String>> {
        self.metrics
            .iter()
            .map(|r| r.get(column).cloned())
            .collect()
    }
}

/// Names the files and metrics that differ, for the failure message.
fn differences(a: &RunFiles, b: &RunFiles) -> String {
    let mut out: Vec<String> = a
        .files
        .iter()
        .filter(|(p, bytes)| b.files.get(*p) != Some(bytes))
        .map(|(p, _)| p.display().to_string())
        .collect();
    out.extend(
        b.files
            .keys()
            .filter(|p| !a.files.contains_key(*p))
            .map(|p| p.display().to_string()),
    );
    if a.metrics != b.metrics {
        out.push("metrics.csv".into());
    }
    out.join(", ")
}

/// Runs `cfg` clean and poisoned and checks the leak guard's promise for it.
fn check(cfg: &TrainConfig, tmp: &Path, name: &str) {
    let clean = run(cfg, &tmp.join(format!("{name}-clean")), false);
    let poisoned = run(cfg, &tmp.join(format!("{name}-poisoned")), true);
    let kind = cfg.method.name;
    if kind == MethodKind::TARGET_ONLY {
        assert_eq!(kind.data_needs().target, TargetUse::Labelled);
        assert_ne!(
            clean.files.get(Path::new("checkpoints/last.safetensors")),
            poisoned
                .files
                .get(Path::new("checkpoints/last.safetensors")),
            "target_only trains on target labels: the poison must change its weights"
        );
        return;
    }
    assert_ne!(
        kind.data_needs().target,
        TargetUse::Labelled,
        "{name}: only target_only may be handed target labels"
    );
    if cfg.method.uses_proportions() && cfg.method.target_proportions.is_none() {
        // The DA-WS permission: the target's train-split label proportions.
        assert_ne!(
            clean, poisoned,
            "{name}: DA-WS reads the target's label proportions, which the poison changed"
        );
        return;
    }
    let (clean, poisoned) = if cfg.few_shot > 0 {
        // The few-shot rule's permission: K labelled target windows per class, drawn by label.
        let (clean, a) = clean.without_few_shot();
        let (poisoned, b) = poisoned.without_few_shot();
        assert_eq!(a.as_array().unwrap().len(), cfg.few_shot * 3);
        assert_ne!(
            a, b,
            "{name}: the few-shot windows are drawn by their (poisoned) labels"
        );
        (clean, poisoned)
    } else {
        (clean, poisoned)
    };
    // The evaluation-only NMI against the pool's hidden labels is the one permitted reader.
    let nmi = clean.column("pool_nmi");
    if nmi.iter().any(Option::is_some) {
        assert_ne!(
            nmi,
            poisoned.column("pool_nmi"),
            "{name}: pool_nmi is scored against the (poisoned) hidden labels"
        );
    }
    let (clean, poisoned) = (clean.without("pool_nmi"), poisoned.without("pool_nmi"));
    assert!(
        clean == poisoned,
        "{name}: poisoned target training labels changed {}: they leaked into training",
        differences(&clean, &poisoned)
    );
    assert!(clean.files.contains_key(Path::new("result.json")));
}

#[test]
fn no_adaptation_method_reads_the_target_training_labels() {
    let tmp = common::TempDir::new("leak-guard-series");
    let methods: Vec<MethodKind> = MethodKind::all()
        .into_iter()
        .filter(|k| k.info().task == Task::Adaptation)
        .collect();
    assert!(methods.len() >= 14, "{methods:?}");
    for kind in methods {
        let name = kind.as_str();
        let mut method = MethodConfig::new(kind);
        if method.uses_proportions() {
            // Not given: read through the DA-WS permission, so the poison shows.
            check(&series_config(method.clone()), tmp.path(), name);
            // Given by the user: nothing of the target's labels is read.
            method.target_proportions = Some(vec![0.2, 0.3, 0.5]);
            check(&series_config(method), tmp.path(), &format!("{name}-given"));
        } else {
            check(&series_config(method), tmp.path(), name);
        }
    }
    // The few-shot selection rule reads its few labelled windows and nothing else.
    let mut cfg = series_config(MethodConfig::new(MethodKind::CODATS));
    cfg.few_shot = 3;
    check(&cfg, tmp.path(), "codats-few-shot");
    // --ws on another adaptation method: the same permission, the same two outcomes.
    let mut dann = MethodConfig::new(MethodKind::parse("dann_gs").unwrap());
    dann.ws = true;
    check(&series_config(dann.clone()), tmp.path(), "dann_gs-ws");
    dann.target_proportions = Some(vec![0.2, 0.3, 0.5]);
    check(&series_config(dann), tmp.path(), "dann_gs-ws-given");
}

#[test]
fn no_image_method_reads_the_unlabelled_pools_labels() {
    let tmp = common::TempDir::new("leak-guard-images");
    let methods: Vec<MethodKind> = MethodKind::all()
        .into_iter()
        .filter(|k| k.info().task == Task::Images)
        .collect();
    assert!(methods.len() >= 8, "{methods:?}");
    for kind in methods {
        check(
            &image_config(MethodConfig::new(kind)),
            tmp.path(),
            kind.as_str(),
        );
    }
    // A Noisy Student with a teacher: the teacher's predictions label the pool, not its
    // hidden labels (p_threshold 0 keeps every image of this short teacher's).
    let noisy = MethodKind::parse("noisy_student").unwrap();
    let teacher = tmp.path().join("teacher");
    let mut method = MethodConfig::new(noisy);
    method.params.insert("ema_m".into(), 0.0);
    let mut teacher_cfg = image_config(method);
    // Long enough to predict more than one class, so that pool_nmi shows the poison.
    teacher_cfg.steps = 100;
    run(&teacher_cfg, &teacher, false);
    let weights = teacher.join("checkpoints/last.safetensors");
    let mut method = MethodConfig::new(noisy);
    method.params.insert("p_threshold".into(), 0.0);
    let mut cfg = image_config(method);
    cfg.images.as_mut().unwrap().teacher = Some(codats::config::images::TeacherConfig {
        run: teacher.clone(),
        weights: "last".into(),
        prefix: "model.".into(),
        backbone: ImageBackbone::SmallCnn,
        gct: false,
        sha256: codats::train::checkpoint::sha256_hex(&std::fs::read(&weights).unwrap()),
    });
    check(&cfg, tmp.path(), "noisy_student-teacher");
}
