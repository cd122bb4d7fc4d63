//! `codats report`: one row per finished run (results.parquet, results.csv), mean ± std tables
//! per dataset × method and per problem (Markdown, LaTeX), paired t-tests against No Adaptation
//! and CoDATS, and figures (PNG, SVG). Image runs (`codats ssl train` jobs) get their own tables
//! (test accuracy per labels per class × method) and figures (accuracy vs labels per class).

pub mod frame;
pub mod plots;
pub mod stats;
pub mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::TrainConfig;
use crate::methods::MethodKind;
use crate::sweep::{Job, JobState, SweepDir};
use crate::train::result::RunResult;
use crate::train::selection::names as rule_names;

/// One finished run of a sweep.
#[derive(Debug, Clone)]
pub struct Record {
    /// The job.
    pub job: Job,
    /// Its saved config.toml.
    pub config: TrainConfig,
    /// Its result.json.
    pub result: RunResult,
    /// Its run directory.
    pub run_dir: PathBuf,
}

impl Record {
    /// Target-test accuracy under selection rule `rule` (NaN if the rule is missing).
    pub fn accuracy(&self, rule: &str) -> f64 {
        self.result
            .selection
            .get(rule)
            .map(|r| r.target_test.accuracy)
            .unwrap_or(f64::NAN)
    }

    /// An image run's labelled images per class; None for a time-series run.
    pub fn labels_per_class(&self) -> Option<usize> {
        self.config.images.as_ref().map(|i| i.labels_per_class)
    }
}

/// Reads every finished job of a sweep directory (jobs.json order). Returns the records and the
/// number of jobs not finished.
pub fn collect(dir: &Path) -> Result<(SweepDir, Vec<Record>, usize)> {
    let sweep = SweepDir::open(dir)?;
    let mut out = Vec::new();
    let mut missing = 0;
    for job in &sweep.plan().jobs {
        if sweep.state(job) != JobState::Done {
            missing += 1;
            continue;
        }
        let run_dir = sweep.run_dir(job);
        let config = crate::train::checkpoint::read_config(&run_dir)?;
        let path = run_dir.join("result.json");
        let result: RunResult = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        out.push(Record {
            job: job.clone(),
            config: config.into_inner(),
            result,
            run_dir,
        });
    }
    Ok((sweep, out, missing))
}

/// Display name of a dataset in tables and figures.
pub fn dataset_title(name: &str) -> String {
    match name {
        "ucihar" => "UCI HAR".into(),
        "ucihhar" | "hhar" => "HHAR".into(),
        "ucihapt" => "UCI HAPT".into(),
        "wisdm_ar" => "WISDM AR".into(),
        "wisdm_at" => "WISDM AT".into(),
        "uwave" => "uWave".into(),
        "synthetic" => "Synthetic".into(),
        "digits" => "Digits".into(),
        "mnist" => "MNIST".into(),
        "cifar10" => "CIFAR-10".into(),
        "image_folder" => "Image folder".into(),
        other => other.to_string(),
    }
}

/// Display name of a method label (`codats_ws [ws_noise=0.1]` → `CoDATS-WS (ws_noise=0.1)`).
pub fn method_title(label: &str) -> String {
    let (m, variant) = match label.split_once(" [") {
        Some((m, v)) => (m, Some(v.trim_end_matches(']'))),
        None => (label, None),
    };
    let base = MethodKind::parse(m).map_or(m, |k| k.info().label);
    match variant {
        Some(v) => format!("{base} ({v})"),
        None => base.to_string(),
    }
}

/// Sort key of a method label: the order of [`MethodKind::all`], then the variant.
pub fn method_order(label: &str) -> (usize, String) {
    let m = label.split(" [").next().unwrap_or(label);
    let i = MethodKind::parse(m).map_or(usize::MAX, |k| {
        MethodKind::all()
            .iter()
            .position(|x| *x == k)
            .unwrap_or(usize::MAX)
    });
    let v = label
        .split_once(" [")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    // Numeric variant values sort numerically when formatted with equal width.
    let v = v
        .split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k, x)) => match x.trim_end_matches(']').parse::<f64>() {
                Ok(f) => format!("{k}={f:020.10}"),
                Err(_) => kv.to_string(),
            },
            None => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    (i, v)
}

/// Values over seeds per method label.
pub type ByMethod = BTreeMap<String, Vec<f64>>;

/// Accuracies grouped dataset → problems (in sweep order) → method label → values over seeds.
pub type Grouped = BTreeMap<String, Vec<(String, ByMethod)>>;

/// Groups the records' target-test accuracy under `rule`.
pub fn group(records: &[Record], rule: &str) -> Grouped {
    let mut g: Grouped = BTreeMap::new();
    for r in records {
        let v = r.accuracy(rule);
        if v.is_nan() {
            continue;
        }
        let problems = g.entry(r.job.dataset.clone()).or_default();
        let i = match problems.iter().position(|(p, _)| *p == r.job.problem) {
            Some(i) => i,
            None => {
                problems.push((r.job.problem.clone(), BTreeMap::new()));
                problems.len() - 1
            }
        };
        problems[i]
            .1
            .entry(r.job.method_label())
            .or_default()
            .push(v);
    }
    g
}

/// Image runs' test accuracies grouped dataset → method label → labels per class → values over
/// seeds.
pub type ImageGrouped = BTreeMap<String, BTreeMap<String, BTreeMap<usize, Vec<f64>>>>;

/// Groups the image records' test accuracy under `rule` (time-series records are left out).
pub fn group_images(records: &[Record], rule: &str) -> ImageGrouped {
    let mut g: ImageGrouped = BTreeMap::new();
    for r in records {
        let (Some(l), v) = (r.labels_per_class(), r.accuracy(rule)) else {
            continue;
        };
        if v.is_nan() {
            continue;
        }
        g.entry(r.job.dataset.clone())
            .or_default()
            .entry(r.job.method_label())
            .or_default()
            .entry(l)
            .or_default()
            .push(v);
    }
    g
}

/// Method labels present in `g` (all datasets), in table order.
pub fn methods_in(g: &Grouped) -> Vec<String> {
    let mut m: Vec<String> = g
        .values()
        .flat_map(|p| p.iter().flat_map(|(_, ms)| ms.keys().cloned()))
        .collect();
    m.sort_by_key(|l| method_order(l));
    m.dedup();
    m
}

/// Writes the whole report into `out`; returns the files written.
pub fn make_report(dir: &Path, out: &Path, rules: Option<&[String]>) -> Result<Vec<PathBuf>> {
    let (sweep, records, missing) = collect(dir)?;
    if records.is_empty() {
        bail!(
            "{} has no finished runs yet ({} jobs pending); see `codats sweep status {}`",
            dir.display(),
            missing,
            dir.display()
        );
    }
    let rules: Vec<String> = match rules {
        Some(r) => r.to_vec(),
        None => sweep.plan().selection.clone(),
    };
    for r in &rules {
        if !rule_names().contains(&r.as_str()) {
            bail!(
                "unknown selection rule {r:?}; valid rules: {}",
                rule_names().join(", ")
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    written.extend(frame::write_results(&records, out)?);
    let (images, series): (Vec<Record>, Vec<Record>) = records
        .iter()
        .cloned()
        .partition(|r| r.labels_per_class().is_some());
    let mut md = format!(
        "# Report: sweep `{}`\n\n{} finished runs{}.\n\n",
        sweep.plan().name,
        records.len(),
        if missing > 0 {
            format!(" ({missing} jobs not finished are left out)")
        } else {
            String::new()
        }
    );
    if !series.is_empty() {
        md.push_str(&series_sections(&series, &rules, out, &mut written)?);
    }
    if !images.is_empty() {
        md.push_str(&image_sections(&images, &rules, out, &mut written)?);
    }
    let p = out.join("report.md");
    std::fs::write(&p, md)?;
    written.push(p);
    Ok(written)
}

/// Writes `files` (name, text) into `out`, adding their paths to `written`.
fn write_files(out: &Path, files: &[(String, &String)], written: &mut Vec<PathBuf>) -> Result<()> {
    for (name, text) in files {
        let p = out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(())
}

/// A report.md section linking the PNG files of `figures`.
fn figure_links(title: &str, figures: &[PathBuf]) -> String {
    let mut md = String::new();
    for f in figures
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        md.push_str(&format!("![{name}]({name})\n\n"));
    }
    if md.is_empty() {
        md
    } else {
        format!("## {title}\n\n{md}")
    }
}

/// The time-series runs' tables, t-tests and figures; returns their report.md text.
fn series_sections(
    records: &[Record],
    rules: &[String],
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<String> {
    let mut md = String::from(
        "Target-test accuracy (%) under each selection rule; cells are mean ± sample standard \
         deviation over all runs (problems × seeds) per dataset, and over seeds per problem. \
         Paired t-tests pair the per-problem means (over seeds) of two methods.\n\n",
    );
    let mut csv_tests =
        String::from("rule,dataset,method,baseline,n_problems,mean_diff_pp,t,df,p\n");
    for rule in rules {
        let g = group(records, rule);
        let (md_t, tex_t) = tables::dataset_table(&g, rule);
        let (md_p, tex_p) = tables::problem_table(&g, rule);
        let tests = tables::ttests(&g);
        let md_s = tables::ttest_markdown(&tests, rule);
        for t in &tests {
            csv_tests.push_str(&format!(
                "{rule},{},{},{},{},{:.6},{:.6},{},{:.6}\n",
                t.dataset,
                t.method,
                t.baseline,
                t.result.n,
                100.0 * t.result.mean_diff,
                t.result.t,
                t.result.df,
                t.result.p
            ));
        }
        write_files(
            out,
            &[
                (format!("table_datasets_{rule}.md"), &md_t),
                (format!("table_datasets_{rule}.tex"), &tex_t),
                (format!("table_problems_{rule}.md"), &md_p),
                (format!("table_problems_{rule}.tex"), &tex_p),
                (format!("ttests_{rule}.md"), &md_s),
            ],
            written,
        )?;
        md.push_str(&format!(
            "## Selection rule `{rule}`\n\n### Per dataset\n\n{md_t}\n### Per problem\n\n{md_p}\n### Paired t-tests\n\n{md_s}\n"
        ));
    }
    write_files(out, &[("ttests.csv".into(), &csv_tests)], written)?;
    let gaps = tables::rule_gap_markdown(&tables::rule_gaps(records));
    if !gaps.is_empty() {
        write_files(out, &[("table_rules.md".into(), &gaps)], written)?;
        md.push_str(&format!(
            "## Selection rules against the oracle

How far each label-free rule's pick falls              below the oracle `best_target` (target validation accuracy, which needs target              labels) in target-test accuracy and macro-F1, mean over every run that has both;              closest first.

{gaps}
"
        ));
    }
    let figures = plots::all_figures(records, rules, out)?;
    md.push_str(&figure_links("Figures", &figures));
    written.extend(figures);
    Ok(md)
}

/// The image runs' tables (per dataset: labels per class × method) and figures (accuracy vs
/// labels per class); returns their report.md text.
fn image_sections(
    records: &[Record],
    rules: &[String],
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<String> {
    let mut md = String::from(
        "## Image classification with few labels\n\nTest accuracy (%) of the image runs \
         (`codats ssl train`) on each dataset's held-out test set, under each selection rule; \
         cells are mean ± sample standard deviation over seeds, with the number of runs n.\n\n",
    );
    for rule in rules {
        let g = group_images(records, rule);
        let (md_t, tex_t) = tables::image_table(&g, rule);
        write_files(
            out,
            &[
                (format!("table_images_{rule}.md"), &md_t),
                (format!("table_images_{rule}.tex"), &tex_t),
            ],
            written,
        )?;
        md.push_str(&format!("### Selection rule `{rule}`\n\n{md_t}\n"));
    }
    let figures = plots::image_figures(records, rules, out)?;
    md.push_str(&figure_links("Image figures", &figures));
    written.extend(figures);
    Ok(md)
}
