//! Sweep specs: expansion counts, seeds, generated multi-source problems (deterministic), the
//! shipped experiments/*.toml, and bad specs rejected with file, key and line before any job.

use std::path::Path;
use std::process::Command;

use codats::data::images::catalog::ImageDataset;
use codats::data::registry::DatasetName;
use codats::sweep::expand::{dataset_domain_ids, expand, Plan};
use codats::sweep::spec::{parse_raw, Source, SpecError};

mod common;

fn plan_of(file: &str, text: &str, only: Option<&[String]>) -> Result<Plan, SpecError> {
    let src = Source {
        file: file.into(),
        text,
    };
    let raw = parse_raw(&src)?;
    let mut ids = |d, dir: Option<&Path>| dataset_domain_ids(d, dir);
    expand(&src, &raw, only, &mut ids)
}

fn shipped(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("experiments")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn smoke_spec_expands_to_four_jobs_in_order() {
    let plan = plan_of("smoke.toml", &shipped("smoke.toml"), None).expect("valid");
    let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "synthetic-none-0-to-1-s0",
            "synthetic-codats-0-to-1-s0",
            "synthetic-none-2-to-3-s0",
            "synthetic-codats-2-to-3-s0"
        ]
    );
    assert_eq!(plan.selection, ["best_target", "last"]);
    let j = &plan.jobs[1];
    assert_eq!((j.steps, j.batch_size, j.eval_every), (20, 32, 10));
    assert_eq!(
        j.train_args().join(" "),
        "train --dataset synthetic --sources 0 --target 1 --method codats --seed 0 --steps 20 \
         --batch-size 32 --lr 0.0001 --split-seed 0 --eval-every 10 --offline"
    );
}

#[test]
fn seeds_overrides_and_grid() {
    let text = r#"
methods = ["none", "codats_ws", "upper"]
seeds = [3, 7]
[train]
steps = 100
lr = 0.001
[[overrides]]
method = "upper"
steps = 50
[[overrides]]
dataset = "synthetic"
method = "codats_ws"
batch_size = 60
[grid]
ws_noise = [0.0, 0.25]
[[problems]]
dataset = "synthetic"
sources = [0, 1]
target = 4
"#;
    let plan = plan_of("g.toml", text, None).expect("valid");
    // none: 2 seeds; codats_ws: 2 noise values x 2 seeds; upper: 2 seeds.
    assert_eq!(plan.jobs.len(), 8);
    let none: Vec<_> = plan
        .jobs
        .iter()
        .filter(|j| j.method.as_str() == "none")
        .collect();
    assert_eq!(none.iter().map(|j| j.seed).collect::<Vec<_>>(), [3, 7]);
    assert!(none
        .iter()
        .all(|j| j.steps == 100 && j.lr == 0.001 && j.ws_noise.is_none() && j.variant.is_empty()));
    let upper: Vec<_> = plan
        .jobs
        .iter()
        .filter(|j| j.method.as_str() == "target_only")
        .collect();
    assert!(upper.iter().all(|j| j.steps == 50));
    let ws: Vec<_> = plan
        .jobs
        .iter()
        .filter(|j| j.method.as_str() == "codats_ws")
        .collect();
    assert_eq!(ws.len(), 4);
    assert!(ws.iter().all(|j| j.batch_size == 60 && j.steps == 100));
    assert_eq!(ws[0].ws_noise, None, "noise 0 is no noise");
    assert_eq!(ws[2].ws_noise, Some(0.25));
    assert_eq!(ws[2].variant, "ws_noise=0.25");
    assert_eq!(ws[2].id, "synthetic-codats_ws-0_1-to-4-ws_noise0.25-s3");
    assert_eq!(ws[2].problem, "0,1->4");
    assert_eq!(
        ws[2].train_config(1).check().map(|_| ()),
        Ok(()),
        "codats_ws accepts --ws-noise"
    );
    let mut bad = none[0].train_config(1);
    bad.method.ws_noise = Some(0.1);
    assert_eq!(
        bad.clone().check().unwrap_err().to_string(),
        "--ws-noise is only used by codats_ws or a method run with --ws (method is none)"
    );
    let mut bad = ws[2].train_config(1);
    bad.method.ws_noise = Some(-0.1);
    assert_eq!(
        bad.clone().check().unwrap_err().to_string(),
        "--ws-noise must be a number in [0, 2], an L1 distance between distributions (got -0.1)"
    );
    bad.method.ws_noise = Some(5.0);
    assert_eq!(
        bad.clone().check().unwrap_err().to_string(),
        "--ws-noise must be a number in [0, 2], an L1 distance between distributions (got 5)"
    );
}

#[test]
fn paper_single_source_has_ten_pairs_per_dataset() {
    let text = shipped("paper_single_source.toml");
    let src = Source {
        file: "paper_single_source.toml".into(),
        text: &text,
    };
    let raw = parse_raw(&src).expect("parses");
    let datasets: Vec<String> = raw
        .problems
        .get_ref()
        .iter()
        .map(|p| p.get_ref().dataset.get_ref().clone())
        .collect();
    assert_eq!(datasets, ["ucihar", "ucihhar", "wisdm_ar", "wisdm_at"]);
    for p in raw.problems.get_ref() {
        assert_eq!(
            p.get_ref().pairs.as_ref().expect("pairs").get_ref().len(),
            10
        );
    }
    // Full checks for every dataset this build knows (the others appear with their loaders).
    // Domain ids are checked against the data; here only UCI HAR's copy (and synthetic) exist.
    let known: Vec<String> = datasets
        .iter()
        .filter(|d| DatasetName::parse(d).is_ok() && checkable(d))
        .cloned()
        .collect();
    let plan = plan_of("paper_single_source.toml", &text, Some(&known)).expect("valid");
    assert_eq!(plan.jobs.len(), known.len() * 10 * 4 * 3);
    let ucihar: Vec<_> = plan.jobs.iter().filter(|j| j.dataset == "ucihar").collect();
    assert_eq!(ucihar.len(), 120);
    assert_eq!(ucihar[0].problem, "14->19");
    assert!(ucihar
        .iter()
        .all(|j| j.steps == 30_000 && j.batch_size == 128));
    assert_eq!(
        plan_of("a.toml", &shipped("adatime_ucihar.toml"), None)
            .expect("valid")
            .jobs
            .len(),
        120
    );
}

#[test]
fn multi_source_subsets_are_seeded_distinct_and_deterministic() {
    let text = shipped("paper_multi_source.toml");
    let plan = plan_of("m.toml", &text, None).expect("valid");
    assert_eq!(plan.jobs.len(), 10 * 5 * 3 * 3 * 3);
    let again = plan_of("m.toml", &text, None).expect("valid");
    assert_eq!(plan, again, "expansion is deterministic");
    let mut problems: Vec<(Vec<u32>, u32)> = plan
        .jobs
        .iter()
        .map(|j| (j.sources.clone(), j.target))
        .collect();
    problems.dedup();
    assert_eq!(problems.len(), 150);
    for t in [21, 4, 1, 24, 9, 8, 25, 5, 29, 18] {
        for n in [1, 7, 13, 19, 25] {
            let subsets: Vec<&Vec<u32>> = problems
                .iter()
                .filter(|(s, tt)| *tt == t && s.len() == n)
                .map(|(s, _)| s)
                .collect();
            assert_eq!(subsets.len(), 3, "target {t}, n {n}");
            assert!(
                subsets[0] != subsets[1] && subsets[1] != subsets[2] && subsets[0] != subsets[2]
            );
            for s in &subsets {
                assert!(!s.contains(&t) && s.iter().all(|d| (1..=30).contains(d)));
                assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
            }
        }
    }
    // Another seed draws other subsets; the same seed, other targets leave these unchanged.
    let other = plan_of("m.toml", &text.replace("seed = 0", "seed = 1"), None).expect("valid");
    assert_ne!(plan.jobs[0].sources, other.jobs[0].sources);
    let fewer = plan_of(
        "m.toml",
        &text.replace("targets = [21, 4,", "targets = [4,"),
        None,
    )
    .expect("valid");
    let t4 = |p: &Plan| {
        p.jobs
            .iter()
            .filter(|j| j.target == 4)
            .map(|j| j.sources.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(t4(&plan), t4(&fewer));
}

/// The message for a dataset name that is neither a time-series nor an image dataset.
fn unknown_dataset(name: &str) -> String {
    let series: Vec<&str> = DatasetName::all().iter().map(|d| d.as_str()).collect();
    format!(
        "unknown dataset {name:?}; valid datasets: {}; image datasets: mnist, digits, cifar10, image_folder",
        series.join(", ")
    )
}

fn error_of(text: &str) -> String {
    plan_of("bad.toml", text, None)
        .expect_err("must be rejected")
        .to_string()
}

const HEAD: &str = "methods = [\"none\", \"codats\"]\n[train]\nsteps = 10\n";

#[test]
fn bad_specs_name_file_key_and_line() {
    assert_eq!(
        error_of(&format!("{HEAD}stepz = 3\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n")),
        "bad.toml:4:1: key `train.stepz`: unknown field `stepz`, expected one of `dataset`, `method`, `steps`, \
         `batch_size`, `batch_division`, `lr`, `split_seed`, `eval_every`, `checkpoint_every`, `few_shot`, `ws_noise`, `ws`, `data_dir`, \
         `kernels`, `labels_per_class`, `uratio`, `unlabelled_limit`, `backbone`, `gct`, `momentum`, `bn_momentum`, \
         `resize`, `color`, `nesterov`, `weight_decay`, `cosine`, `test_fraction`, `valid_size`"
    );
    let e = error_of(&format!(
        "{HEAD}lr = \"fast\"\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n"
    ));
    assert!(
        e.starts_with("bad.toml:4:6: key `train.lr`: invalid type: string \"fast\", expected f64"),
        "{e}"
    );
    assert_eq!(
        error_of(&format!(
            "{HEAD}[[problems]]\ndataset = \"mnistt\"\npairs = [[0, 1]]\n"
        )),
        format!(
            "bad.toml:5:11: key `problems[0].dataset`: {}",
            unknown_dataset("mnistt")
        )
    );
    assert_eq!(
        error_of("methods = [\"none\",\n  \"dann\"]\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n"),
        "bad.toml:2:3: key `methods[1]`: unknown method \"dann\"; valid methods: ".to_string()
            + &codats::methods::MethodKind::names()
    );
    assert_eq!(
        error_of(&format!(
            "{HEAD}[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1],\n  [3, 3]]\n"
        )),
        "bad.toml:7:3: key `problems[0].pairs[1]`: target 3 is also one of its sources"
    );
    assert_eq!(
        error_of(&format!("{HEAD}[[problems]]\ndataset = \"synthetic\"\nsources = [0, 12]\ntarget = 1\n")),
        "bad.toml:6:11: key `problems[0].sources`: domain 12 is not in synthetic (its domains are 0..9)"
    );
    assert_eq!(
        error_of(&format!("{HEAD}[[problems]]\ndataset = \"ucihar\"\npairs = [[0, 1]]\n")),
        "bad.toml:6:10: key `problems[0].pairs[0]`: domain 0 is not in ucihar (its domains are 1..30)"
    );
    assert_eq!(
        error_of(&format!("{HEAD}[[problems]]\ndataset = \"synthetic\"\ntargets = [1]\nn_sources = [10]\nsubsets = 2\n")),
        "bad.toml:7:14: key `problems[0].n_sources[0]`: cannot choose 10 sources for target 1: 9 candidate domains"
    );
    assert_eq!(
        error_of(&format!("{HEAD}[[overrides]]\nmethod = \"codats\"\nws_noise = -1.0\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n")),
        "bad.toml:6:12: key `overrides[0].ws_noise`: must be a non-negative number"
    );
    assert_eq!(
        error_of(&format!("{HEAD}[grid]\nmomentum = [0.9]\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n")),
        "bad.toml:5:1: key `grid.momentum`: cannot sweep \"momentum\"; grid keys: steps, batch_size, lr, eval_every, \
         split_seed, ws_noise, ws, labels_per_class, uratio"
    );
}

#[test]
fn cli_rejects_a_bad_spec_before_any_job_starts() {
    let tmp = common::TempDir::new("sweep-bad-spec");
    let spec = tmp.path().join("bad.toml");
    std::fs::write(
        &spec,
        format!("{HEAD}[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1], [5, 5]]\n"),
    )
    .expect("write spec");
    let out = tmp.path().join("sweep");
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(["sweep", "run"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run codats");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: {}:6:18: key `problems[0].pairs[1]`: target 5 is also one of its sources",
            spec.display()
        )
    );
    assert!(
        !out.exists(),
        "no sweep directory may be created for a rejected spec"
    );
}

#[test]
fn every_shipped_spec_parses_and_the_runnable_ones_expand() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("experiments/").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".toml") {
            continue;
        }
        n += 1;
        let text = shipped(&name);
        let src = Source {
            file: name.clone(),
            text: &text,
        };
        let raw = parse_raw(&src).unwrap_or_else(|e| panic!("{e}"));
        let known: Vec<String> = raw
            .problems
            .get_ref()
            .iter()
            .map(|p| p.get_ref().dataset.get_ref().clone())
            .filter(|d| checkable(d))
            .collect();
        let plan = plan_of(&name, &text, Some(&known)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!plan.jobs.is_empty(), "{name}");
    }
    assert!(n >= 6, "found {n} specs");
    let ws = plan_of("w.toml", &shipped("ws_noise_synthetic.toml"), None).expect("valid");
    assert_eq!(ws.jobs.len(), 36);
    assert_eq!(
        plan_of("r.toml", &shipped("readme_ucihar.toml"), None)
            .expect("valid")
            .jobs
            .len(),
        16
    );
    assert_eq!(
        plan_of("w.toml", &shipped("ws_ucihar.toml"), None)
            .expect("valid")
            .jobs
            .len(),
        12
    );
}

/// Datasets whose problems a spec check can expand on this machine: domain ids in
/// ../shared/data or generated, and the image datasets (no domains to read).
fn checkable(name: &str) -> bool {
    matches!(name, "ucihar" | "synthetic") || ImageDataset::parse(name).is_some()
}

const IMAGE_SPEC: &str = r#"
methods = ["supervised", "fixmatch"]
seeds = [0, 1]
[train]
steps = 300
batch_size = 16
uratio = 2
[[overrides]]
method = "fixmatch"
momentum = 0.8
checkpoint_every = 50
[grid]
labels_per_class = [5, 10]
[[problems]]
dataset = "digits"
[[problems]]
dataset = "synthetic"
pairs = [[0, 1]]
methods = ["none"]
"#;

#[test]
fn image_problems_expand_to_ssl_train_jobs() {
    let plan = plan_of("img.toml", IMAGE_SPEC, None).expect("valid");
    let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    // labels_per_class multiplies the image jobs only; it is their problem, not a variant.
    assert_eq!(
        ids,
        [
            "digits-supervised-l5-s0",
            "digits-supervised-l5-s1",
            "digits-supervised-l10-s0",
            "digits-supervised-l10-s1",
            "digits-fixmatch-l5-s0",
            "digits-fixmatch-l5-s1",
            "digits-fixmatch-l10-s0",
            "digits-fixmatch-l10-s1",
            "synthetic-none-0-to-1-s0",
            "synthetic-none-0-to-1-s1",
        ]
    );
    let j = &plan.jobs[7];
    assert_eq!(
        (j.problem.as_str(), j.variant.as_str()),
        ("labels_per_class=10", "")
    );
    assert_eq!(
        j.train_args().join(" "),
        "ssl train --dataset digits --labels-per-class 10 --method fixmatch --seed 1 --steps 300 \
         --batch-size 16 --lr 0.03 --split-seed 0 --eval-every 100 --uratio 2 --backbone small-cnn \
         --momentum 0.8 --bn-momentum 0.001 --weight-decay 0.0005 --test-fraction 0.2 --valid-size 500 --checkpoint-every 50"
    );
    assert_eq!(j.resume_args(), ["ssl", "train", "--resume"]);
    assert_eq!(
        plan.jobs[0].train_args().join(" "),
        "ssl train --dataset digits --labels-per-class 5 --method supervised --seed 0 --steps 300 \
         --batch-size 16 --lr 0.03 --split-seed 0 --eval-every 100 --uratio 2 --backbone small-cnn \
         --momentum 0.9 --bn-momentum 0.001 --weight-decay 0.0005 --test-fraction 0.2 --valid-size 500"
    );
    // The config `codats ssl train` saves for that job: what a resumed sweep compares against.
    let cfg = j.train_config(1).check().expect("checks");
    let im = cfg.images.as_ref().expect("image config");
    assert_eq!((im.labels_per_class, im.uratio, im.momentum), (10, 2, 0.8));
    assert_eq!((cfg.sources.as_slice(), cfg.target), (&[1][..], 0));
    // The time-series problem of the same spec is unchanged by the image keys.
    let da = &plan.jobs[9];
    assert_eq!(
        da.train_args().join(" "),
        "train --dataset synthetic --sources 0 --target 1 --method none --seed 1 --steps 300 \
         --batch-size 16 --lr 0.0001 --split-seed 0 --eval-every 500 --offline"
    );
    assert_eq!(da.resume_args(), ["train", "--resume"]);
    assert!(da.images.is_none() && da.variant.is_empty());
    // jobs.json round trip.
    let json = serde_json::to_string(&plan).expect("json");
    assert_eq!(serde_json::from_str::<Plan>(&json).expect("parse"), plan);
}

#[test]
fn shipped_image_specs() {
    let plan = plan_of("ssl_digits.toml", &shipped("ssl_digits.toml"), None).expect("valid");
    assert_eq!(plan.jobs.len(), 3 * 7 * 3);
    assert_eq!(plan.selection, ["last", "best_target"]);
    let methods: std::collections::BTreeSet<&str> =
        plan.jobs.iter().map(|j| j.method.as_str()).collect();
    assert_eq!(
        methods.into_iter().collect::<Vec<_>>(),
        [
            "entmin",
            "fixmatch",
            "mean_teacher",
            "pi_model",
            "pseudo_label",
            "supervised",
            "vat"
        ]
    );
    assert_eq!(
        plan.jobs[5].train_args().join(" "),
        "ssl train --dataset digits --labels-per-class 10 --method supervised --seed 2 --steps 1000 \
         --batch-size 16 --lr 0.03 --split-seed 0 --eval-every 100 --uratio 2 --backbone small-cnn \
         --momentum 0.9 --bn-momentum 0.001 --weight-decay 0.0005 --test-fraction 0.2 --valid-size 500"
    );
    let plan = plan_of("ssl_mnist.toml", &shipped("ssl_mnist.toml"), None).expect("valid");
    assert_eq!(plan.jobs.len(), 7 * 3);
    assert_eq!(plan.threads, Some(1));
    assert_eq!(
        plan.jobs[20].train_args().join(" "),
        "ssl train --dataset mnist --labels-per-class 10 --method fixmatch --seed 2 --steps 2000 \
         --batch-size 16 --lr 0.03 --split-seed 0 --eval-every 100 --uratio 7 --backbone small-cnn \
         --momentum 0.9 --bn-momentum 0.001 --weight-decay 0.0005 --test-fraction 0.2 --valid-size 500 --kernels fast"
    );
}

const IMG_HEAD: &str = "methods = [\"supervised\", \"fixmatch\"]\n[train]\nsteps = 10\n";

#[test]
fn bad_image_specs_name_file_key_and_value() {
    let image_methods =
        "supervised, pseudo_label, pi_model, mean_teacher, vat, entmin, fixmatch, uic, deepcluster, rotation, noisy_student";
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}[grid]\nlabels_per_class = [5, 0]\n[[problems]]\ndataset = \"digits\"\n"
        )),
        "bad.toml:5:20: key `grid.labels_per_class`: value 0: must be at least 1"
    );
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}labels_per_class = 0\n[[problems]]\ndataset = \"digits\"\n"
        )),
        "bad.toml:4:20: key `train.labels_per_class`: must be at least 1"
    );
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}momentum = 1.5\n[grid]\nlabels_per_class = [5]\n[[problems]]\ndataset = \"digits\"\n"
        )),
        "bad.toml:4:12: key `train.momentum`: must lie in [0, 1)"
    );
    assert_eq!(
        error_of(&format!("{IMG_HEAD}[[problems]]\ndataset = \"digits\"\n")),
        "bad.toml:4:1: key `problems[0]`: image problems need `labels_per_class` (for method \
         supervised): set it in [train], [[overrides]] or [grid]"
    );
    // An image method on a time-series dataset, and the reverse.
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n"
        )),
        "bad.toml:1:12: key `methods[0]`: method supervised is an image method (`codats ssl train`) \
         but problems[0] is synthetic, a time-series dataset; give that entry its own `methods` \
         (time-series methods: "
            .to_string()
            + &codats::methods::MethodKind::names_of(codats::methods::Task::Adaptation)
            + ")"
    );
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}labels_per_class = 5\n[[problems]]\ndataset = \"digits\"\nmethods = [\"fixmatch\", \"codats\"]\n"
        )),
        format!(
            "bad.toml:7:24: key `problems[0].methods[1]`: method codats is a time-series adaptation \
             method (`codats train`) but problems[0] is digits, an image dataset (image methods: \
             {image_methods})"
        )
    );
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}labels_per_class = 5\n[[problems]]\ndataset = \"mnist\"\npairs = [[0, 1]]\n"
        )),
        "bad.toml:7:9: key `problems[0].pairs`: mnist is an image dataset: its problems have no \
         domains, so `pairs` does not apply (the labelled pool is `labels_per_class`, in [train], \
         [[overrides]] or [grid])"
    );
    assert_eq!(
        error_of(&format!(
            "{HEAD}[grid]\nlabels_per_class = [5]\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n"
        )),
        "bad.toml:5:1: key `grid.labels_per_class`: \"labels_per_class\" only applies to image \
         problems (mnist, digits, cifar10, image_folder) and this spec has none"
    );
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}labels_per_class = 5\nbn_momentum = 0.0\n[[problems]]\ndataset = \"digits\"\n"
        )),
        "bad.toml:5:15: key `train.bn_momentum`: must lie in (0, 1]"
    );
    // Unknown keys and values are rejected with the keys and values that are valid.
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}[[problems]]\ndataset = \"digits\"\nlabels = [5]\n"
        )),
        "bad.toml:6:1: key `problems.labels`: unknown field `labels`, expected one of `dataset`, \
         `pairs`, `sources`, `target`, `targets`, `n_sources`, `subsets`, `seed`, `pool`, `methods`"
    );
    let e = error_of(&format!(
        "{IMG_HEAD}backbone = \"resnet\"\n[[problems]]\ndataset = \"digits\"\n"
    ));
    assert!(
        e.starts_with("bad.toml:4:12: key `train.backbone`: unknown variant `resnet`, expected one of `small-cnn`, `wrn-28-2`, `fcn`, `adatime-cnn`, `gru`"),
        "{e}"
    );
    assert_eq!(
        error_of(&format!(
            "{IMG_HEAD}labels_per_class = 5\n[[overrides]]\ndataset = \"digitz\"\nsteps = 5\n[[problems]]\ndataset = \"digits\"\n"
        )),
        format!(
            "bad.toml:6:11: key `overrides[0].dataset`: {}",
            unknown_dataset("digitz")
        )
    );
}

/// `backbone` sets each kind of job's network by its name: AdaTime's spec runs every time-series
/// job on AdaTime's CNN but R-DANN's and VRADA's, which keep the recurrent networks they are
/// defined on, and an image name leaves time-series jobs on the FCN (and the other way round).
#[test]
fn a_backbone_name_sets_the_jobs_of_its_kind() {
    use codats::nn::series::SeriesBackbone;
    let plan = plan_of("a.toml", &shipped("adatime_ucihar_baselines.toml"), None).expect("valid");
    assert_eq!(plan.jobs.len(), 10 * 15 * 3);
    for j in &plan.jobs {
        let own = match j.train_config(1).method.name.as_str() {
            "rdann" => Some(SeriesBackbone::Gru),
            "vrada" => Some(SeriesBackbone::Vrnn),
            _ => None,
        };
        let args = j.train_args().join(" ");
        assert_eq!(
            args.contains(" --backbone adatime-cnn"),
            own.is_none(),
            "{}",
            j.id
        );
        assert_eq!(
            j.train_config(1).backbone,
            own.unwrap_or(SeriesBackbone::AdatimeCnn),
            "{}",
            j.id
        );
        assert_eq!((j.steps, j.batch_size), (300, 64));
    }
    let mixed = "name = \"m\"\nmethods = [\"codats\", \"rdann\"]\n[train]\nsteps = 5\n\
                 backbone = \"wrn-28-2\"\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n";
    let plan = plan_of("m.toml", mixed, None).expect("valid");
    let args: Vec<String> = plan.jobs.iter().map(|j| j.train_args().join(" ")).collect();
    assert!(args.iter().all(|a| !a.contains("--backbone")), "{args:?}");
    assert_eq!(
        plan.jobs[1].train_config(1).backbone,
        codats::nn::series::SeriesBackbone::Gru,
        "rdann's own"
    );
    let gru = mixed.replace("wrn-28-2", "gru");
    let plan = plan_of("m.toml", &gru, None).expect("valid");
    assert!(plan.jobs[0]
        .train_args()
        .join(" ")
        .contains(" --backbone gru"));
}

/// `ws` puts DA-WS on the adaptation methods that take `--ws` (swept in `[grid]` or set in
/// `[train]`, naming the job either way) and leaves the others' jobs alone.
#[test]
fn ws_composes_da_ws_onto_the_methods_that_take_it() {
    let head =
        "name = \"w\"\nmethods = [\"none\", \"dann_gs\", \"codats_ws\"]\n[train]\nsteps = 5\n";
    let problems = "[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n";
    let plan = plan_of(
        "w.toml",
        &format!("{head}[grid]\nws = [false, true]\n{problems}"),
        None,
    )
    .expect("valid");
    let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "synthetic-none-0-to-1-s0",
            "synthetic-dann_gs-0-to-1-wsfalse-s0",
            "synthetic-dann_gs-0-to-1-wstrue-s0",
            "synthetic-codats_ws-0-to-1-s0"
        ]
    );
    let with_ws: Vec<bool> = plan
        .jobs
        .iter()
        .map(|j| j.train_args().iter().any(|a| a == "--ws"))
        .collect();
    assert_eq!(with_ws, [false, false, true, false]);
    for j in &plan.jobs {
        let cfg = j.train_config(1);
        assert_eq!(
            cfg.method.ws,
            with_ws[plan.jobs.iter().position(|k| k.id == j.id).unwrap()]
        );
        cfg.check().unwrap_or_else(|e| panic!("{}: {e}", j.id));
    }
    let plan = plan_of(
        "w.toml",
        &format!("{}ws = true\nws_noise = 0.1\n{problems}", head),
        None,
    )
    .expect("valid");
    let dann = &plan.jobs[1];
    assert_eq!(dann.id, "synthetic-dann_gs-0-to-1-wstrue-s0");
    assert_eq!(dann.method_label(), "dann_gs [ws=true]");
    let args = dann.train_args().join(" ");
    assert!(args.contains(" --ws --ws-noise 0.1"), "{args}");
    assert!(!plan.jobs[0].train_args().iter().any(|a| a == "--ws"));
    // ws_noise multiplies only the combinations with DA-WS, whichever key comes first.
    let plan = plan_of(
        "w.toml",
        &format!("{head}[grid]\nws_noise = [0.0, 0.2]\nws = [false, true]\n{problems}"),
        None,
    )
    .expect("valid");
    let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "synthetic-none-0-to-1-s0",
            "synthetic-dann_gs-0-to-1-wsfalse-s0",
            "synthetic-dann_gs-0-to-1-wstrue-ws_noise0.0-s0",
            "synthetic-dann_gs-0-to-1-wstrue-ws_noise0.2-s0",
            "synthetic-codats_ws-0-to-1-ws_noise0.0-s0",
            "synthetic-codats_ws-0-to-1-ws_noise0.2-s0"
        ]
    );
}

/// `few_shot` in `[train]` adds the few-shot selection rule to the time-series jobs (their
/// command and config.toml) and leaves image jobs without it; 0 is refused like every count.
#[test]
fn few_shot_adds_the_few_shot_rule_to_time_series_jobs() {
    let spec = "name = \"f\"\nmethods = [\"none\", \"supervised\"]\n[train]\nsteps = 5\nfew_shot = 5\n\
                [[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\nmethods = [\"none\"]\n\
                [[problems]]\ndataset = \"digits\"\nmethods = [\"supervised\"]\n[grid]\nlabels_per_class = [1]\n";
    let plan = plan_of("f.toml", spec, None).expect("valid");
    assert_eq!(plan.jobs.len(), 2);
    for j in &plan.jobs {
        let args = j.train_args().join(" ");
        if j.images.is_some() {
            assert!(!args.contains("--few-shot"), "{args}");
            assert_eq!(j.train_config(1).few_shot, 0);
        } else {
            assert!(args.contains(" --few-shot 5"), "{args}");
            assert_eq!(j.train_config(1).few_shot, 5);
        }
    }
    assert_eq!(
        error_of("methods = [\"none\"]\n[train]\nfew_shot = 0\n[[problems]]\ndataset = \"synthetic\"\npairs = [[0, 1]]\n"),
        "bad.toml:3:12: key `train.few_shot`: must be at least 1"
    );
}
