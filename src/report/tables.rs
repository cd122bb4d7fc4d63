//! Mean ± std tables (Markdown and LaTeX, in the paper's layout: rows datasets or problems,
//! columns No Adaptation, CoDATS, CoDATS-WS, Train on Target; for image runs rows labels per
//! class, columns the image methods) and paired t-tests.

use super::stats::{mean, paired_t, std, PairedT};
use super::{
    dataset_title, method_order, method_title, methods_in, ByMethod, Grouped, ImageGrouped,
};

/// `85.3 ± 1.2` (percent); `85.3` alone when there is one value.
pub fn cell(values: &[f64]) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let m = 100.0 * mean(values);
    let s = 100.0 * std(values);
    if s.is_nan() {
        format!("{m:.1}")
    } else {
        format!("{m:.1} ± {s:.1}")
    }
}

/// [`cell`] with the number of values: `85.3 ± 1.2 (n=3)`.
pub fn cell_n(values: &[f64]) -> String {
    if values.is_empty() {
        return cell(values);
    }
    format!("{} (n={})", cell(values), values.len())
}

fn tex_escape(s: &str) -> String {
    s.replace('\\', r"\textbackslash{}")
        .replace('_', r"\_")
        .replace('%', r"\%")
        .replace('&', r"\&")
        .replace('#', r"\#")
}

fn tex_cell(values: &[f64], bold: bool, show_n: bool) -> String {
    if values.is_empty() {
        return "--".into();
    }
    let n = if show_n {
        format!(" ($n={}$)", values.len())
    } else {
        String::new()
    };
    let m = 100.0 * mean(values);
    let s = 100.0 * std(values);
    let body = if s.is_nan() {
        format!("{m:.1}")
    } else {
        format!("{m:.1} \\pm {s:.1}")
    };
    if bold {
        format!("$\\mathbf{{{body}}}${n}")
    } else {
        format!("${body}${n}")
    }
}

/// Whether a method label names a bound trained on target labels (never "best adaptation").
fn is_bound(label: &str) -> bool {
    let name = label.split(" [").next().unwrap_or(label);
    crate::methods::MethodKind::parse(name).is_some_and(|k| !k.data_needs().sources)
}

/// Indices of the best adaptation methods (highest mean, ties included; Train on Target
/// excluded) in `cells`.
fn best(methods: &[String], cells: &[Vec<f64>]) -> Vec<usize> {
    let means: Vec<Option<f64>> = methods
        .iter()
        .zip(cells)
        .map(|(m, v)| (!is_bound(m) && !v.is_empty()).then(|| mean(v)))
        .collect();
    let top = means
        .iter()
        .flatten()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    means
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_some_and(|m| m >= top - 1e-9))
        .map(|(i, _)| i)
        .collect()
}

/// A table with `methods` as columns and `rows` of cells (values per method); cells show the
/// number of values when `show_n`.
fn render(
    first: &str,
    rows: &[(String, Vec<Vec<f64>>)],
    methods: &[String],
    caption: &str,
    show_n: bool,
) -> (String, String) {
    let cell: fn(&[f64]) -> String = if show_n { cell_n } else { cell };
    let titles: Vec<String> = methods.iter().map(|m| method_title(m)).collect();
    let mut md = format!(
        "| {first} | {} |\n|---|{}\n",
        titles.join(" | "),
        "---|".repeat(titles.len())
    );
    let mut tex = format!(
        "\\begin{{table}}[t]\n\\centering\n\\caption{{{}}}\n\\begin{{tabular}}{{l{}}}\n\\toprule\n{} & {} \\\\\n\\midrule\n",
        tex_escape(caption),
        "c".repeat(titles.len()),
        tex_escape(first),
        titles.iter().map(|t| tex_escape(t)).collect::<Vec<_>>().join(" & ")
    );
    for (name, cells) in rows {
        if name == "Average" {
            tex.push_str("\\midrule\n");
        }
        let b = best(methods, cells);
        let md_cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if b.contains(&i) {
                    format!("**{}**", cell(v))
                } else {
                    cell(v)
                }
            })
            .collect();
        md.push_str(&format!("| {name} | {} |\n", md_cells.join(" | ")));
        let tex_cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, v)| tex_cell(v, b.contains(&i), show_n))
            .collect();
        tex.push_str(&format!(
            "{} & {} \\\\\n",
            tex_escape(name),
            tex_cells.join(" & ")
        ));
    }
    tex.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    (md, tex)
}

/// Rows datasets, columns methods: mean ± std over all runs (problems × seeds).
pub fn dataset_table(g: &Grouped, rule: &str) -> (String, String) {
    let methods = methods_in(g);
    let rows: Vec<(String, Vec<Vec<f64>>)> = g
        .iter()
        .map(|(d, problems)| (dataset_title(d), pooled_over_problems(problems, &methods)))
        .collect();
    render(
        "Dataset",
        &rows,
        &methods,
        &format!("Target-test accuracy (%), mean ± std over problems and seeds; selection rule {rule}. Bold: best adaptation method."),
        false,
    )
}

/// Each method's accuracies pooled over all problems of a dataset (every problem and seed).
fn pooled_over_problems(problems: &[(String, ByMethod)], methods: &[String]) -> Vec<Vec<f64>> {
    methods
        .iter()
        .map(|m| {
            problems
                .iter()
                .flat_map(|(_, ms)| ms.get(m).cloned().unwrap_or_default())
                .collect()
        })
        .collect()
}

/// Per dataset, rows problems (and an Average row), columns methods: mean ± std over seeds.
pub fn problem_table(g: &Grouped, rule: &str) -> (String, String) {
    let methods = methods_in(g);
    let mut md = String::new();
    let mut tex = String::new();
    for (d, problems) in g {
        let mut rows: Vec<(String, Vec<Vec<f64>>)> = problems
            .iter()
            .map(|(p, ms)| {
                (
                    p.replace("->", " → "),
                    methods
                        .iter()
                        .map(|m| ms.get(m).cloned().unwrap_or_default())
                        .collect(),
                )
            })
            .collect();
        rows.push(("Average".into(), pooled_over_problems(problems, &methods)));
        let (m, t) = render(
            "Problem",
            &rows,
            &methods,
            &format!(
                "{}: target-test accuracy (%) per problem (sources → target), mean ± std over seeds; selection rule {rule}.",
                dataset_title(d)
            ),
            false,
        );
        md.push_str(&format!("**{}**\n\n{m}\n", dataset_title(d)));
        tex.push_str(&t.replace(" → ", " $\\rightarrow$ "));
        tex.push('\n');
    }
    (md, tex)
}

/// Per image dataset, rows labels per class, columns methods: test accuracy mean ± std over
/// seeds with the number of runs.
pub fn image_table(g: &ImageGrouped, rule: &str) -> (String, String) {
    let mut md = String::new();
    let mut tex = String::new();
    for (d, by_method) in g {
        let mut methods: Vec<String> = by_method.keys().cloned().collect();
        methods.sort_by_key(|l| method_order(l));
        let mut labels: Vec<usize> = by_method.values().flat_map(|m| m.keys().copied()).collect();
        labels.sort_unstable();
        labels.dedup();
        let rows: Vec<(String, Vec<Vec<f64>>)> = labels
            .iter()
            .map(|l| {
                (
                    l.to_string(),
                    methods
                        .iter()
                        .map(|m| by_method[m].get(l).cloned().unwrap_or_default())
                        .collect(),
                )
            })
            .collect();
        let (m, t) = render(
            "Labels per class",
            &rows,
            &methods,
            &format!(
                "{}: test accuracy (%) per labelled images per class, mean ± std over seeds (n runs); selection rule {rule}. Bold: best method.",
                dataset_title(d)
            ),
            true,
        );
        md.push_str(&format!("**{}**\n\n{m}\n", dataset_title(d)));
        tex.push_str(&t);
        tex.push('\n');
    }
    (md, tex)
}

/// One paired t-test of a method against a baseline across problems.
#[derive(Debug, Clone, PartialEq)]
pub struct TTestRow {
    /// Dataset name, or `all`.
    pub dataset: String,
    /// Method label.
    pub method: String,
    /// Baseline label (`none` or `codats`).
    pub baseline: String,
    /// The test.
    pub result: PairedT,
}

/// Paired t-tests of every method against `none` and `codats`, per dataset and over all
/// datasets, pairing per-problem means over seeds.
pub fn ttests(g: &Grouped) -> Vec<TTestRow> {
    let methods = methods_in(g);
    let mut out = Vec::new();
    let mut scopes: Vec<(String, Vec<&super::ByMethod>)> = g
        .iter()
        .map(|(d, ps)| (d.clone(), ps.iter().map(|(_, ms)| ms).collect()))
        .collect();
    if g.len() > 1 {
        scopes.push((
            "all".into(),
            g.values()
                .flat_map(|ps| ps.iter().map(|(_, ms)| ms))
                .collect(),
        ));
    }
    for (dataset, problems) in &scopes {
        for baseline in ["none", "codats"] {
            for m in &methods {
                // The method itself, and No Adaptation vs CoDATS (the mirror of CoDATS vs No Adaptation).
                if m == baseline || (baseline == "codats" && m == "none") {
                    continue;
                }
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for ms in problems {
                    if let (Some(x), Some(y)) = (ms.get(m), ms.get(baseline)) {
                        a.push(mean(x));
                        b.push(mean(y));
                    }
                }
                if a.is_empty() {
                    continue;
                }
                out.push(TTestRow {
                    dataset: dataset.clone(),
                    method: m.clone(),
                    baseline: baseline.to_string(),
                    result: paired_t(&a, &b),
                });
            }
        }
    }
    out
}

fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "–".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The t-tests as a Markdown table.
pub fn ttest_markdown(rows: &[TTestRow], rule: &str) -> String {
    let mut md = format!(
        "Paired two-sided t-tests across problems (per-problem means over seeds), selection rule {rule}.\n\n\
         | Dataset | Method | vs | Problems | Mean diff (pp) | t | p |\n|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let ds = if r.dataset == "all" {
            "All".to_string()
        } else {
            dataset_title(&r.dataset)
        };
        md.push_str(&format!(
            "| {ds} | {} | {} | {} | {:+.2} | {:.3} | {} |\n",
            method_title(&r.method),
            method_title(&r.baseline),
            r.result.n,
            100.0 * r.result.mean_diff,
            r.result.t,
            fmt_p(r.result.p)
        ));
    }
    md
}

/// One label-free selection rule measured against the oracle over the runs that have both.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGap {
    /// The rule.
    pub rule: String,
    /// Runs compared.
    pub n: usize,
    /// Mean of (oracle − rule) target-test accuracy, in percentage points.
    pub accuracy_gap: f64,
    /// Mean of (oracle − rule) target-test macro-F1, in points.
    pub f1_gap: f64,
    /// Runs where the rule picked the oracle's step.
    pub same_step: usize,
}

/// Every label-free selection rule (and `last`) in `records`, ranked by how close it comes to
/// the oracle `best_target`: mean accuracy gap first (smallest first), ties by name. Runs
/// without the oracle or the rule are left out of that rule's row.
pub fn rule_gaps(records: &[super::Record]) -> Vec<RuleGap> {
    use crate::train::selection::{names, RULES};
    let oracle = |name: &str| RULES.iter().any(|r| r.name == name && r.oracle);
    let mut out = Vec::new();
    for rule in names().into_iter().filter(|r| !oracle(r)) {
        let mut gaps = Vec::new();
        let mut f1 = Vec::new();
        let mut same = 0;
        for r in records {
            let sel = &r.result.selection;
            let (Some(o), Some(x)) = (sel.get("best_target"), sel.get(rule)) else {
                continue;
            };
            gaps.push(o.target_test.accuracy - x.target_test.accuracy);
            f1.push(o.target_test.macro_f1 - x.target_test.macro_f1);
            same += usize::from(o.step == x.step);
        }
        if gaps.is_empty() {
            continue;
        }
        out.push(RuleGap {
            rule: rule.to_string(),
            n: gaps.len(),
            accuracy_gap: 100.0 * mean(&gaps),
            f1_gap: 100.0 * mean(&f1),
            same_step: same,
        });
    }
    out.sort_by(|a, b| {
        a.accuracy_gap
            .total_cmp(&b.accuracy_gap)
            .then_with(|| a.rule.cmp(&b.rule))
    });
    out
}

/// [`rule_gaps`] as a Markdown table (empty when no run has the oracle).
pub fn rule_gap_markdown(gaps: &[RuleGap]) -> String {
    if gaps.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "| rank | rule | runs | accuracy below the oracle (pp) | macro-F1 below the oracle (pp) | picked the oracle's step |\n|---|---|---|---|---|---|\n",
    );
    for (i, g) in gaps.iter().enumerate() {
        md.push_str(&format!(
            "| {} | `{}` | {} | {:.2} | {:.2} | {} of {} |\n",
            i + 1,
            g.rule,
            g.n,
            g.accuracy_gap,
            g.f1_gap,
            g.same_step,
            g.n
        ));
    }
    md
}
