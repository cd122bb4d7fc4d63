//! `codats report` on a fixed small results set: exact means, stds and paired t-test p-values
//! (checked against scipy), the results table's rows and columns, and valid non-empty figures.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use codats::metrics::Classification;
use codats::sweep::expand::{dataset_domain_ids, expand};
use codats::sweep::spec::{parse_raw, Source};
use codats::sweep::{Job, SweepDir};
use codats::train::result::{ImageRunInfo, RuleResult, RunResult};

mod common;

const SPEC: &str = r#"
name = "fixture"
methods = ["none", "codats", "codats_ws"]
seeds = [0, 1]
selection = ["best_target", "last"]
[train]
steps = 100
batch_size = 60
eval_every = 50
[grid]
ws_noise = [0.0, 0.3]
[[problems]]
dataset = "synthetic"
pairs = [[0, 1], [2, 3], [4, 5]]
[[problems]]
dataset = "synthetic"
sources = [0, 2, 4]
target = 6
"#;

/// best_target accuracy of each (method label, problem) over seeds 0 and 1.
fn accuracy(method: &str, problem: &str, seed: u64) -> f64 {
    let v: [f64; 2] = match (method, problem) {
        ("none", "0->1") => [0.5, 0.6],
        ("none", "2->3") => [0.7, 0.8],
        ("none", "4->5") => [0.4, 0.5],
        ("none", _) => [0.46, 0.55],
        ("codats", "0->1") => [0.7, 0.8],
        ("codats", "2->3") => [0.75, 0.85],
        ("codats", "4->5") => [0.6, 0.6],
        ("codats", _) => [0.66, 0.75],
        (_, "0->1") => [0.72, 0.78],
        (_, "2->3") => [0.8, 0.8],
        (_, "4->5") => [0.62, 0.6],
        _ => [0.7, 0.7],
    };
    let noise_penalty = if method.contains("ws_noise=0.3") {
        0.1
    } else {
        0.0
    };
    v[seed as usize] - noise_penalty
}

fn rule(acc: f64, step: usize) -> RuleResult {
    RuleResult {
        step,
        target_test: Classification {
            accuracy: acc,
            macro_f1: acc - 0.1,
            confusion: vec![vec![1, 0], vec![0, 1]],
            n: 100,
        },
        source_test_accuracy: 0.9,
        source_valid_accuracy: 0.91,
        target_valid_accuracy: acc + 0.01,
        clustering: None,
    }
}

fn fixture(root: &Path) -> usize {
    write_fixture(root, SPEC, |job| {
        accuracy(&job.method_label(), &job.problem, job.seed)
    })
}

/// A sweep directory of `spec` whose every job has finished with best_target accuracy
/// `acc(job)` (last: 0.1 lower); returns the number of jobs.
fn write_fixture(root: &Path, spec: &str, acc: impl Fn(&Job) -> f64) -> usize {
    let src = Source {
        file: "fixture.toml".into(),
        text: spec,
    };
    let raw = parse_raw(&src).expect("parse");
    let mut ids = |d, dir: Option<&Path>| dataset_domain_ids(d, dir);
    let plan = expand(&src, &raw, None, &mut ids).expect("expand");
    let dir = SweepDir::prepare(root, spec, &plan).expect("prepare");
    for job in &plan.jobs {
        let run = dir.run_dir(job);
        std::fs::create_dir_all(&run).expect("mkdir");
        std::fs::write(
            run.join("config.toml"),
            toml::to_string(&job.train_config(1)).expect("toml"),
        )
        .expect("write");
        let acc = acc(job);
        let mut selection = BTreeMap::new();
        selection.insert("best_target".to_string(), rule(acc, 50));
        selection.insert("best_source".to_string(), rule(acc - 0.02, 100));
        selection.insert("last".to_string(), rule(acc - 0.1, 100));
        if job.method.as_str() == "uic" {
            // A clustering method's result also scores its clusters.
            for r in selection.values_mut() {
                let a = r.target_test.accuracy;
                r.clustering = Some(codats::eval::cluster::ClusterScores {
                    clusters: 10,
                    hungarian_accuracy: a,
                    majority_accuracy: a + 0.01,
                    nmi: a - 0.2,
                    ari: a - 0.3,
                    n: 100,
                });
            }
        }
        let result = RunResult {
            dataset: job.dataset.clone(),
            method: job.method.to_string(),
            sources: job.sources.clone(),
            target: job.target,
            seed: job.seed,
            steps: 100,
            classes: vec!["a".into(), "b".into()],
            selection,
            few_shot_windows: None,
            images: job.images.as_ref().map(|im| ImageRunInfo {
                labels_per_class: im.labels_per_class,
                backbone: im.backbone.as_str().into(),
                gct: im.gct,
                weights: "ema".into(),
            }),
        };
        std::fs::write(
            run.join("result.json"),
            serde_json::to_string(&result).expect("json"),
        )
        .expect("write");
        std::fs::write(
            run.join("metrics.csv"),
            format!(
                "step,loss,task_loss,domain_loss,ws_loss,lambda,source_valid_acc,target_valid_acc,steps_per_s\n\
                 50,1.2,1.0,0.2,,0.5,0.8,{:.6},3.0\n100,0.8,0.7,0.1,,0.9,0.9,{:.6},3.0\n",
                acc - 0.1,
                acc
            ),
        )
        .expect("write");
    }
    plan.jobs.len()
}

fn is_png(p: &Path) -> bool {
    let b = std::fs::read(p).unwrap_or_default();
    b.len() > 1000 && b.starts_with(b"\x89PNG\r\n\x1a\n")
}

fn is_svg(p: &Path) -> bool {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    t.len() > 1000 && t.contains("<svg") && t.trim_end().ends_with("</svg>") && t.contains("<text")
}

/// Runs `codats report DIR`; returns the report folder.
fn report_of(dir: &Path) -> std::path::PathBuf {
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .arg("report")
        .arg(dir)
        .output()
        .expect("run codats report");
    common::succeeded(o, &dir);
    dir.join("report")
}

/// `out/STEM.png` and `out/STEM.svg` are valid, non-empty figures; the SVG shows `texts`.
fn assert_figure(out: &Path, stem: &str, texts: &[&str]) {
    assert!(is_png(&out.join(format!("{stem}.png"))), "{stem}.png");
    let svg = out.join(format!("{stem}.svg"));
    assert!(is_svg(&svg), "{stem}.svg");
    let text = std::fs::read_to_string(&svg).unwrap_or_default();
    for t in texts {
        assert!(text.contains(t), "{stem}.svg lacks {t:?}");
    }
}

#[test]
fn report_numbers_tables_and_figures() {
    let tmp = common::TempDir::new("report");
    let n_jobs = fixture(tmp.path());
    // 4 problems x (none + codats + codats_ws x 2 noises) x 2 seeds.
    assert_eq!(n_jobs, 32);
    let out = report_of(tmp.path());
    // CODATS_KEEP_REPORT=DIR keeps a copy of the generated report for looking at the figures.
    if let Some(keep) = std::env::var_os("CODATS_KEEP_REPORT") {
        std::fs::create_dir_all(&keep).expect("mkdir");
        for e in std::fs::read_dir(&out).expect("report dir").flatten() {
            std::fs::copy(e.path(), Path::new(&keep).join(e.file_name())).expect("copy");
        }
    }
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };

    // The label-free rules ranked against the oracle: best_source is 2 points below it in every
    // run (accuracy and macro-F1) and picks step 100 where the oracle picked 50; last is 10 below.
    assert_eq!(
        read("table_rules.md"),
        "| rank | rule | runs | accuracy below the oracle (pp) | macro-F1 below the oracle (pp) | picked the oracle's step |\n\
         |---|---|---|---|---|---|\n\
         | 1 | `best_source` | 32 | 2.00 | 2.00 | 0 of 32 |\n\
         | 2 | `last` | 32 | 10.00 | 10.00 | 0 of 32 |\n"
    );
    assert!(read("report.md").contains("## Selection rules against the oracle"));

    // Per-dataset table: mean ± sample std over all 8 runs (4 problems x 2 seeds).
    // numpy: none [.5,.6,.7,.8,.4,.5,.46,.55] -> mean 56.375, std(ddof=1) 13.1794;
    // codats [.7,.8,.75,.85,.6,.6,.66,.75] -> 71.375, 9.0702; codats_ws(0) -> 71.5, 7.6904.
    let md = read("table_datasets_best_target.md");
    assert!(md.starts_with(
        "| Dataset | No Adaptation | CoDATS | CoDATS-WS (ws_noise=0.0) | CoDATS-WS (ws_noise=0.3) |\n|---|---|---|---|---|\n"
    ), "{md}");
    assert!(
        md.contains("| Synthetic | 56.4 ± 13.2 | 71.4 ± 9.1 | **71.5 ± 7.7** | 61.5 ± 7.7 |"),
        "{md}"
    );
    let tex = read("table_datasets_best_target.tex");
    assert!(tex.contains("Synthetic & $56.4 \\pm 13.2$ & $71.4 \\pm 9.1$ & $\\mathbf{71.5 \\pm 7.7}$ & $61.5 \\pm 7.7$ \\\\"), "{tex}");
    assert!(tex.contains("\\begin{tabular}{lcccc}") && tex.contains("\\bottomrule"));

    // Per-problem table: mean ± std over the 2 seeds, in spec order, with an Average row.
    let md = read("table_problems_best_target.md");
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| {
            l.starts_with("| 0 → 1")
                || l.starts_with("| 2 → 3")
                || l.starts_with("| 4 → 5")
                || l.starts_with("| 0,2,4 → 6")
                || l.starts_with("| Average")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "| 0 → 1 | 55.0 ± 7.1 | **75.0 ± 7.1** | **75.0 ± 4.2** | 65.0 ± 4.2 |",
            "| 2 → 3 | 75.0 ± 7.1 | **80.0 ± 7.1** | **80.0 ± 0.0** | 70.0 ± 0.0 |",
            "| 4 → 5 | 45.0 ± 7.1 | 60.0 ± 0.0 | **61.0 ± 1.4** | 51.0 ± 1.4 |",
            "| 0,2,4 → 6 | 50.5 ± 6.4 | **70.5 ± 6.4** | 70.0 ± 0.0 | 60.0 ± 0.0 |",
            "| Average | 56.4 ± 13.2 | 71.4 ± 9.1 | **71.5 ± 7.7** | 61.5 ± 7.7 |",
        ],
        "{md}"
    );

    // Paired t-tests over the 4 per-problem means. scipy.stats.ttest_rel:
    //   codats vs none: a=[.75,.8,.6,.705] b=[.55,.75,.45,.505] -> t=4.2426406871192865, p=0.023981199790656656
    //   ws(0) vs codats: a=[.75,.8,.61,.7] b=[.75,.8,.6,.705] -> t=0.39735970711950197, p=0.7176856442107934
    let csv = read("ttests.csv");
    let line = |rule: &str, m: &str, b: &str| -> Vec<String> {
        csv.lines()
            .find(|l| l.starts_with(&format!("{rule},synthetic,{m},{b},")))
            .unwrap_or_else(|| panic!("no t-test {m} vs {b} in\n{csv}"))
            .split(',')
            .map(String::from)
            .collect()
    };
    let t = line("best_target", "codats", "none");
    assert_eq!(t[4], "4");
    assert!((t[5].parse::<f64>().unwrap() - 15.0).abs() < 1e-6, "{t:?}");
    assert!(
        (t[6].parse::<f64>().unwrap() - 4.2426406871192865).abs() < 1e-6,
        "{t:?}"
    );
    assert!(
        (t[8].parse::<f64>().unwrap() - 0.023981199790656656).abs() < 1e-6,
        "{t:?}"
    );
    let t = line("best_target", "codats_ws [ws_noise=0.0]", "codats");
    assert!(
        (t[6].parse::<f64>().unwrap() - 0.39735970711950197).abs() < 1e-6,
        "{t:?}"
    );
    assert!(
        (t[8].parse::<f64>().unwrap() - 0.7176856442107934).abs() < 1e-6,
        "{t:?}"
    );
    // `last` is best_target - 0.1 for every run: same differences, same test.
    let t = line("last", "codats", "none");
    assert!(
        (t[8].parse::<f64>().unwrap() - 0.023981199790656656).abs() < 1e-6,
        "{t:?}"
    );
    assert!(
        !csv.contains(",none,codats,"),
        "No Adaptation vs CoDATS only mirrors CoDATS vs No Adaptation"
    );
    let md = read("ttests_best_target.md");
    assert!(
        md.contains("| Synthetic | CoDATS | No Adaptation | 4 | +15.00 | 4.243 | 0.0240 |"),
        "{md}"
    );

    // results.csv / results.parquet: one row per run, config fields and every rule's metrics.
    let csv = read("results.csv");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    for col in [
        "job_id",
        "problem",
        "variant",
        "n_sources",
        "dataset",
        "sources",
        "target",
        "method",
        "steps",
        "batch_size",
        "batch_division",
        "lr",
        "seed",
        "split_seed",
        "eval_every",
        "checkpoint_every",
        "ws_noise",
        "threads",
        "code_version",
        "last_target_accuracy",
        "best_source_target_accuracy",
        "best_target_target_accuracy",
        "best_target_target_macro_f1",
        "best_target_step",
    ] {
        assert!(
            header.contains(&col),
            "column {col} missing from {header:?}"
        );
    }
    assert_eq!(csv.lines().count(), 33);
    let parquet = std::fs::read(out.join("results.parquet")).expect("parquet");
    assert!(parquet.len() > 500 && parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));

    // Figures: valid, non-empty PNG and SVG.
    for stem in [
        "accuracy_vs_sources_synthetic",
        "training_curves_synthetic",
        "ws_noise_synthetic",
    ] {
        assert_figure(&out, stem, &[]);
    }
    assert_figure(
        &out,
        "accuracy_by_dataset",
        &[
            "Target-test accuracy (%)",
            "No Adaptation",
            "CoDATS",
            "Synthetic",
        ],
    );
    assert!(read("report.md").contains("![accuracy_by_dataset.png](accuracy_by_dataset.png)"));
}

const IMAGE_FIXTURE: &str = r#"
name = "images"
methods = ["supervised", "fixmatch"]
repeats = 3
selection = ["best_target", "last"]
[train]
steps = 100
batch_size = 16
[grid]
labels_per_class = [20, 5]
[[problems]]
dataset = "digits"
[[problems]]
dataset = "synthetic"
pairs = [[0, 1]]
methods = ["none"]
"#;

#[test]
fn report_of_a_mixed_sweep_has_image_tables_and_figures() {
    let tmp = common::TempDir::new("report-images");
    let n = write_fixture(tmp.path(), IMAGE_FIXTURE, |job| {
        let v: [f64; 3] = match (job.method.as_str(), job.problem.as_str()) {
            ("supervised", "labels_per_class=5") => [0.50, 0.55, 0.60],
            ("fixmatch", "labels_per_class=5") => [0.70, 0.72, 0.74],
            ("supervised", "labels_per_class=20") => [0.80, 0.85, 0.90],
            ("fixmatch", "labels_per_class=20") => [0.90, 0.91, 0.92],
            ("none", "0->1") => [0.6, 0.6, 0.6],
            other => panic!("unexpected job {other:?}"),
        };
        v[job.seed as usize]
    });
    // 2 methods x 2 label counts x 3 seeds, and 1 pair x 1 method x 3 seeds.
    assert_eq!(n, 15);
    let out = report_of(tmp.path());
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    // Rows labels per class (ascending), columns methods; mean ± sample std over 3 seeds.
    assert_eq!(
        read("table_images_best_target.md"),
        "**Digits**\n\n| Labels per class | Supervised | FixMatch |\n|---|---|---|\n\
         | 5 | 55.0 ± 5.0 (n=3) | **72.0 ± 2.0 (n=3)** |\n\
         | 20 | 85.0 ± 5.0 (n=3) | **91.0 ± 1.0 (n=3)** |\n\n"
    );
    // `last` is 0.1 lower in every run; LaTeX cells carry n as well.
    for (file, line) in [
        (
            "table_images_last.md",
            "| 5 | 45.0 ± 5.0 (n=3) | **62.0 ± 2.0 (n=3)** |",
        ),
        (
            "table_images_last.tex",
            "5 & $45.0 \\pm 5.0$ ($n=3$) & $\\mathbf{62.0 \\pm 2.0}$ ($n=3$) \\\\",
        ),
    ] {
        let text = read(file);
        assert!(text.contains(line), "{file} lacks {line:?}:\n{text}");
    }
    // The time-series part of the sweep keeps its tables, without the image runs.
    assert_eq!(
        read("table_datasets_best_target.md"),
        "| Dataset | No Adaptation |\n|---|---|\n| Synthetic | **60.0 ± 0.0** |\n"
    );
    let csv = read("results.csv");
    assert_eq!(csv.lines().count(), 16);
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    for col in [
        "labels_per_class",
        "uratio",
        "backbone",
        "best_target_target_accuracy",
    ] {
        assert!(
            header.contains(&col),
            "column {col} missing from {header:?}"
        );
    }
    assert_figure(
        &out,
        "accuracy_vs_labels_digits",
        &[
            "Labelled images per class",
            "Supervised",
            "FixMatch",
            "Digits",
        ],
    );
    assert_figure(&out, "accuracy_by_dataset", &["No Adaptation"]);
    assert!(
        !read("accuracy_by_dataset.svg").contains("Digits"),
        "the time-series bar chart leaves the image runs out"
    );
    let report = read("report.md");
    assert!(
        report.contains("## Image classification with few labels"),
        "{report}"
    );
    assert!(report.contains("![accuracy_vs_labels_digits.png](accuracy_vs_labels_digits.png)"));
}

const TINY_IMAGE_SWEEP: &str = r#"
name = "tiny_images"
methods = ["supervised", "fixmatch"]
seeds = [0]
selection = ["last", "best_target"]
threads = 1
[train]
steps = 20
batch_size = 16
uratio = 2
eval_every = 10
[grid]
labels_per_class = [5, 10]
[[problems]]
dataset = "digits"
"#;

/// `cell_n` of one value: `12.3 (n=1)`, bold when it is the row's best.
fn one_run_cell(acc: f64, best: bool) -> String {
    let c = format!("{:.1} (n=1)", 100.0 * acc);
    if best {
        format!("**{c}**")
    } else {
        c
    }
}

#[test]
fn image_sweep_runs_locally_and_reports() {
    let data = common::real_data_root();
    common::real_dataset("sklearn_digits");
    let tmp = common::TempDir::new("report-image-sweep");
    let spec = tmp.path().join("tiny.toml");
    std::fs::write(&spec, TINY_IMAGE_SWEEP).expect("write spec");
    let dir = tmp.path().join("sweep");
    let codats = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(env!("CARGO_BIN_EXE_codats"))
            .args(args)
            .env("CODATS_DATA_DIR", &data)
            .output()
            .expect("run codats");
        common::succeeded(o, &args)
    };
    let run = [
        "sweep".as_ref(),
        "run".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        dir.as_os_str(),
        "--jobs".as_ref(),
        "2".as_ref(),
    ];
    // One job was interrupted after 10 of its 20 steps (its checkpoint is at step 10): the
    // sweep takes its run directory as its own (same settings) and resumes it.
    let (_, plan) = codats::sweep::load_plan(&spec, None).expect("plan");
    let job = plan
        .jobs
        .iter()
        .find(|j| j.id == "digits-fixmatch-l10-s0")
        .expect("job");
    let interrupted = dir.join("runs").join(&job.id);
    let mut args: Vec<std::ffi::OsString> = job.train_args().into_iter().map(Into::into).collect();
    args.extend(["--threads", "1", "--quiet", "--stop-after", "10", "--out"].map(Into::into));
    args.push(interrupted.clone().into());
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    codats(&args);
    assert!(interrupted.join("checkpoints/resume/state.json").is_file());
    assert!(!interrupted.join("result.json").exists());
    let out = codats(&run);
    assert!(
        out.contains("4 jobs: 4 ran now, 0 were already done, 0 failed"),
        "{out}"
    );
    let again = codats(&run);
    assert!(
        again.contains("4 jobs: 0 ran now, 4 were already done"),
        "{again}"
    );
    let log = std::fs::read_to_string(dir.join("logs/digits-fixmatch-l10-s0.log")).expect("log");
    assert!(
        log.contains(&format!(
            "codats ssl train --resume --quiet --out {}",
            interrupted.display()
        )),
        "{log}"
    );
    let log = std::fs::read_to_string(dir.join("logs/digits-supervised-l5-s0.log")).expect("log");
    assert!(
        log.contains("codats ssl train --dataset digits --labels-per-class 5 --method supervised --seed 0 --steps 20"),
        "{log}"
    );
    report_of(&dir);

    // Every table cell is the accuracy in the runs' result.json.
    let acc = |method: &str, labels: u64, rule: &str| -> f64 {
        let p = dir
            .join("runs")
            .join(format!("digits-{method}-l{labels}-s0"))
            .join("result.json");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("result")).expect("json");
        assert_eq!(r["images"]["labels_per_class"], labels, "{}", p.display());
        r["selection"][rule]["target_test"]["accuracy"]
            .as_f64()
            .expect("accuracy")
    };
    for rule in ["last", "best_target"] {
        let md = std::fs::read_to_string(dir.join(format!("report/table_images_{rule}.md")))
            .expect("table");
        let mut want = String::from(
            "**Digits**\n\n| Labels per class | Supervised | FixMatch |\n|---|---|---|\n",
        );
        for l in [5, 10] {
            let s = acc("supervised", l, rule);
            let f = acc("fixmatch", l, rule);
            want.push_str(&format!(
                "| {l} | {} | {} |\n",
                one_run_cell(s, s >= f - 1e-9),
                one_run_cell(f, f >= s - 1e-9)
            ));
        }
        want.push('\n');
        assert_eq!(md, want, "rule {rule}");
    }
    assert_figure(
        &dir.join("report"),
        "accuracy_vs_labels_digits",
        &["Supervised", "FixMatch"],
    );
}

const UIC_FIXTURE: &str = r#"
name = "clusters"
methods = ["uic", "supervised"]
repeats = 2
selection = ["best_target", "last"]
[train]
steps = 100
batch_size = 16
[grid]
labels_per_class = [1]
[[problems]]
dataset = "digits"
"#;

/// results.parquet / results.csv carry a clustering method's scores (clusters, Hungarian and
/// majority accuracy, NMI, ARI) per rule; a sweep without one has no such columns.
#[test]
fn clustering_scores_are_result_columns_when_a_run_has_them() {
    let tmp = common::TempDir::new("report-clusters");
    let n = write_fixture(tmp.path(), UIC_FIXTURE, |job| 0.5 + 0.1 * job.seed as f64);
    assert_eq!(n, 4);
    let out = report_of(tmp.path());
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} in {header:?}"))
    };
    let (method, nmi, ari, k) = (
        col("method"),
        col("best_target_nmi"),
        col("last_ari"),
        col("best_target_clusters"),
    );
    col("best_target_hungarian_accuracy");
    col("last_majority_accuracy");
    let mut seen = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[method] == "uic" {
            // seed 0: best_target 0.5 → NMI 0.3; last 0.4 → ARI 0.1.
            let v: f64 = f[nmi].parse().unwrap();
            assert!((v - 0.3).abs() < 1e-9 || (v - 0.4).abs() < 1e-9, "{line}");
            let a: f64 = f[ari].parse().unwrap();
            assert!((a - 0.1).abs() < 1e-9 || (a - 0.2).abs() < 1e-9, "{line}");
            assert_eq!(f[k], "10");
            seen += 1;
        } else {
            assert_eq!(f[nmi], "", "{line}");
        }
    }
    assert_eq!(seen, 2);
    // The time-series sweep of the other test has none of these columns.
    let tmp = common::TempDir::new("report-no-clusters");
    fixture(tmp.path());
    let csv = std::fs::read_to_string(report_of(tmp.path()).join("results.csv")).unwrap();
    assert!(!csv.lines().next().unwrap().contains("_nmi"));
}
