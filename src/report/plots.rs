//! Figures (PNG and SVG, plotters with a bundled DejaVu Sans font): accuracy per method per
//! dataset, accuracy vs number of sources, training curves, accuracy vs DA-WS noise, and for
//! image runs accuracy vs labels per class.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::stats::{mean, std};
use super::{dataset_title, group_images, method_order, method_title, Record};
use crate::methods::MethodKind;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_fonts() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok()
            && plotters::style::register_font(FAMILY, FontStyle::Bold, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the bundled font could not be loaded"))
    }
}

macro_rules! d {
    ($e:expr) => {
        $e.map_err(|e| anyhow!("drawing: {e:?}"))?
    };
}

/// Tick label with as many decimals as the axis span needs (steps as integers, 0.1-wide noise
/// axes with two decimals).
fn tick(v: f64, span: f64) -> String {
    let decimals = if span >= 20.0 {
        0
    } else if span >= 2.0 {
        1
    } else {
        2
    };
    format!("{v:.decimals$}")
}

const LIGHT: RGBColor = RGBColor(238, 238, 238);
const BOLD: RGBColor = RGBColor(205, 205, 205);

/// Fixed colours per method so every figure agrees; variants cycle through a palette.
fn color(label: &str, i: usize) -> RGBColor {
    if label.contains(" [") {
        let p = [
            RGBColor(230, 159, 0),
            RGBColor(213, 94, 0),
            RGBColor(204, 121, 167),
            RGBColor(86, 180, 233),
            RGBColor(0, 114, 178),
            RGBColor(0, 158, 115),
        ];
        return p[i % p.len()];
    }
    match MethodKind::parse(label) {
        Some(m) => {
            let (r, g, b) = m.info().color;
            RGBColor(r, g, b)
        }
        None => RGBColor(204, 121, 167),
    }
}

/// Draws a legend (colour swatch + name per entry) in `area`.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    items: &[(String, RGBColor, bool)],
) -> Result<()> {
    let font = (FAMILY, 15).into_font();
    d!(area.draw(&Text::new(
        title.to_string(),
        (10, 50),
        (FAMILY, 15).into_font().style(FontStyle::Bold)
    )));
    for (i, (name, c, dashed)) in items.iter().enumerate() {
        let y = 80 + 26 * i as i32;
        if *dashed {
            for k in 0..3 {
                d!(area.draw(&PathElement::new(
                    vec![(10 + 8 * k, y + 7), (14 + 8 * k, y + 7)],
                    c.stroke_width(3)
                )));
            }
        } else {
            d!(area.draw(&Rectangle::new([(10, y), (32, y + 14)], c.filled())));
        }
        d!(area.draw(&Text::new(name.clone(), (40, y), font.clone())));
    }
    Ok(())
}

/// Data of the bar chart.
struct Bars {
    title: String,
    datasets: Vec<String>,
    methods: Vec<String>,
    /// [dataset][method] -> values.
    values: Vec<Vec<Vec<f64>>>,
}

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &Bars) -> Result<()> {
    d!(root.fill(&WHITE));
    let (w, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(w.saturating_sub(230));
    let n = f.datasets.len();
    let mut chart = d!(ChartBuilder::on(&left)
        .caption(&f.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..100f64));
    let names = f.datasets.clone();
    d!(chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(2) * 2 + 1)
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                dataset_title(&names[i as usize])
            } else {
                String::new()
            }
        })
        .y_desc("Target-test accuracy (%)")
        .x_desc("Dataset")
        .y_label_formatter(&|y: &f64| format!("{y:.0}"))
        .light_line_style(LIGHT)
        .bold_line_style(BOLD)
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 14))
        .draw());
    let m = f.methods.len().max(1);
    let width = 0.8 / m as f64;
    for (mi, method) in f.methods.iter().enumerate() {
        let c = color(method, mi);
        let mut bars = Vec::new();
        for (di, per_method) in f.values.iter().enumerate() {
            let v = &per_method[mi];
            if v.is_empty() {
                continue;
            }
            let x0 = di as f64 - 0.4 + width * mi as f64;
            bars.push((x0, x0 + width * 0.92, 100.0 * mean(v), 100.0 * std(v)));
        }
        d!(chart.draw_series(
            bars.iter()
                .map(|&(x0, x1, y, _)| Rectangle::new([(x0, 0.0), (x1, y)], c.filled()))
        ));
        d!(chart.draw_series(
            bars.iter()
                .filter(|b| b.3.is_finite())
                .map(|&(x0, x1, y, s)| {
                    ErrorBar::new_vertical(
                        (x0 + x1) / 2.0,
                        (y - s).max(0.0),
                        y,
                        (y + s).min(100.0),
                        BLACK.stroke_width(1),
                        6,
                    )
                })
        ));
    }
    let items: Vec<(String, RGBColor, bool)> = f
        .methods
        .iter()
        .enumerate()
        .map(|(i, m)| (method_title(m), color(m, i), false))
        .collect();
    legend(&right, "Method (mean ± std)", &items)?;
    Ok(())
}

/// A line chart: x values with mean ± std per series, and optional horizontal reference lines.
struct Lines {
    title: String,
    x_desc: String,
    y_desc: String,
    /// (label, points (x, values)).
    series: Vec<(String, Vec<(f64, Vec<f64>)>)>,
    /// (label, y) dashed horizontal lines.
    references: Vec<(String, f64)>,
    y_range: Option<(f64, f64)>,
    legend_title: String,
    /// Label only whole numbers on the x axis.
    integer_x: bool,
}

fn draw_lines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &Lines) -> Result<()> {
    d!(root.fill(&WHITE));
    let (w, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(w.saturating_sub(260));
    draw_lines_in(&left, f)?;
    let mut items: Vec<(String, RGBColor, bool)> = f
        .series
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (method_title(m), color(m, i), false))
        .collect();
    items.extend(
        f.references
            .iter()
            .enumerate()
            .map(|(i, (m, _))| (method_title(m), color(m, i), true)),
    );
    legend(&right, &f.legend_title, &items)?;
    Ok(())
}

fn draw_lines_in<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, f: &Lines) -> Result<()> {
    let xs: Vec<f64> = f
        .series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .collect();
    let (xmin, xmax) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let span = xmax - xmin;
    let pad = if span > 0.0 { span * 0.08 } else { 0.5 };
    let (ylo, yhi) = f.y_range.unwrap_or_else(|| {
        let ys: Vec<f64> = f
            .series
            .iter()
            .flat_map(|(_, p)| {
                p.iter().flat_map(|(_, v)| {
                    let (m, sd) = (mean(v), std(v));
                    let sd = if sd.is_finite() { sd } else { 0.0 };
                    [m - sd, m + sd]
                })
            })
            .chain(f.references.iter().map(|r| r.1))
            .filter(|y| y.is_finite())
            .collect();
        let lo = ys.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let p = ((hi - lo) * 0.15).max(0.05);
        ((lo - p).max(0.0), hi + p)
    });
    let mut chart = d!(ChartBuilder::on(area)
        .caption(&f.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin - pad)..(xmax + pad), ylo..yhi));
    let (xspan, yspan) = (xmax - xmin + 2.0 * pad, yhi - ylo);
    d!(chart
        .configure_mesh()
        .x_desc(f.x_desc.as_str())
        .y_desc(f.y_desc.as_str())
        .x_label_formatter(&|x: &f64| {
            if f.integer_x {
                if (x - x.round()).abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            } else {
                tick(*x, xspan)
            }
        })
        .y_label_formatter(&|y: &f64| tick(*y, yspan))
        .light_line_style(LIGHT)
        .bold_line_style(BOLD)
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 14))
        .draw());
    for (i, (label, points)) in f.series.iter().enumerate() {
        let c = color(label, i);
        // Series side by side by a hair so their error bars do not hide each other.
        let dodge = if f.series.len() > 1 && span > 0.0 {
            (i as f64 - (f.series.len() - 1) as f64 / 2.0) * span * 0.012
        } else {
            0.0
        };
        let pts: Vec<(f64, f64, f64)> = points
            .iter()
            .map(|(x, v)| (*x + dodge, mean(v), std(v)))
            .collect();
        d!(chart.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            c.stroke_width(2)
        )));
        let marker = if pts.len() <= 25 { 4 } else { 0 };
        d!(chart.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), marker, c.filled()))
        ));
        d!(
            chart.draw_series(pts.iter().filter(|p| p.2.is_finite()).map(|p| {
                ErrorBar::new_vertical(p.0, p.1 - p.2, p.1, p.1 + p.2, c.stroke_width(1), 8)
            }))
        );
    }
    for (i, (label, y)) in f.references.iter().enumerate() {
        let c = color(label, i);
        d!(chart.draw_series(DashedLineSeries::new(
            vec![(xmin - pad, *y), (xmax + pad, *y)],
            8,
            6,
            c.stroke_width(2)
        )));
    }
    Ok(())
}

/// Training curves: target-validation accuracy and training loss vs step.
struct Curves {
    title: String,
    /// (label, [(step, acc values, loss values)]).
    series: Vec<(String, Vec<(f64, Vec<f64>, Vec<f64>)>)>,
}

fn draw_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &Curves) -> Result<()> {
    d!(root.fill(&WHITE));
    let (w, _) = root.dim_in_pixel();
    let (plots, right) = root.split_horizontally(w.saturating_sub(230));
    let title_h = 40;
    let (top, body) = plots.split_vertically(title_h);
    d!(top.titled(&f.title, (FAMILY, 20)));
    let panels = body.split_evenly((1, 2));
    let acc = Lines {
        title: "Target validation accuracy".into(),
        x_desc: "Training step".into(),
        y_desc: "Accuracy (%)".into(),
        series: f
            .series
            .iter()
            .map(|(l, p)| {
                (
                    l.clone(),
                    p.iter().map(|(s, a, _)| (*s, a.clone())).collect(),
                )
            })
            .collect(),
        references: Vec::new(),
        y_range: Some((0.0, 100.0)),
        legend_title: String::new(),
        integer_x: true,
    };
    draw_lines_in(&panels[0], &acc)?;
    let loss = Lines {
        title: "Training loss (mean since last evaluation)".into(),
        x_desc: "Training step".into(),
        y_desc: "Training loss (task + domain terms)".into(),
        series: f
            .series
            .iter()
            .map(|(l, p)| {
                (
                    l.clone(),
                    p.iter().map(|(s, _, v)| (*s, v.clone())).collect(),
                )
            })
            .collect(),
        references: Vec::new(),
        y_range: None,
        legend_title: String::new(),
        integer_x: true,
    };
    draw_lines_in(&panels[1], &loss)?;
    let items: Vec<(String, RGBColor, bool)> = f
        .series
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (method_title(m), color(m, i), false))
        .collect();
    legend(&right, "Method (mean ± std)", &items)?;
    Ok(())
}

macro_rules! both {
    ($out:expr, $stem:expr, $size:expr, $draw:ident, $data:expr) => {{
        let png = $out.join(format!("{}.png", $stem));
        let svg = $out.join(format!("{}.svg", $stem));
        {
            let root = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw(&root, $data)?;
            d!(root.present());
        }
        {
            let root = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw(&root, $data)?;
            d!(root.present());
        }
        vec![png, svg]
    }};
}

fn sorted_methods<'a>(labels: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut m: Vec<String> = labels.cloned().collect();
    m.sort_by_key(|l| method_order(l));
    m.dedup();
    m
}

/// "2 runs per method", or "1–3 runs per method" when methods have different counts.
fn runs_per_method(runs: &BTreeMap<String, usize>) -> String {
    let lo = runs.values().copied().min().unwrap_or(0);
    let hi = runs.values().copied().max().unwrap_or(0);
    let n = if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}–{hi}")
    };
    let noun = if hi == 1 { "run" } else { "runs" };
    format!("{n} {noun} per method")
}

/// Reads (step, target_valid_acc, loss) rows of a run's metrics.csv.
fn read_metrics(run: &Path) -> Result<Vec<(f64, f64, f64)>> {
    let path = run.join("metrics.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(s), Some(a), Some(l)) = (col("step"), col("target_valid_acc"), col("loss")) else {
        return Ok(Vec::new());
    };
    Ok(lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let p = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            Some((p(s)?, p(a)?, p(l).unwrap_or(f64::NAN)))
        })
        .collect())
}

/// Draws every figure the records support, under the first of `rules`; returns the files.
pub fn all_figures(records: &[Record], rules: &[String], out: &Path) -> Result<Vec<PathBuf>> {
    register_fonts()?;
    let rule = rules.first().map(String::as_str).unwrap_or("best_target");
    let (mut written, datasets) = accuracy_by_dataset(records, rule, out)?;
    for dataset in &datasets {
        written.extend(accuracy_vs_sources(records, dataset, rule, out)?);
        written.extend(training_curves(records, dataset, out)?);
        written.extend(ws_noise_figure(records, dataset, rule, out)?);
    }
    Ok(written)
}

/// Accuracy (%) vs a whole-number setting, one line per method (mean ± std over its runs at
/// each value as error bars).
fn accuracy_lines(
    title: String,
    x_desc: &str,
    y_desc: &str,
    series: &BTreeMap<String, BTreeMap<usize, Vec<f64>>>,
) -> Lines {
    Lines {
        title,
        x_desc: x_desc.into(),
        y_desc: y_desc.into(),
        series: sorted_methods(series.keys())
            .into_iter()
            .map(|m| {
                let pts = series[&m]
                    .iter()
                    .map(|(n, v)| (*n as f64, v.clone()))
                    .collect();
                (m, pts)
            })
            .collect(),
        references: Vec::new(),
        y_range: None,
        legend_title: "Method (mean ± std)".into(),
        integer_x: true,
    }
}

/// Per image dataset, test accuracy vs labelled images per class, one line per method (mean ±
/// std over seeds as error bars), under the first of `rules`; returns the files.
pub fn image_figures(records: &[Record], rules: &[String], out: &Path) -> Result<Vec<PathBuf>> {
    register_fonts()?;
    let rule = rules.first().map(String::as_str).unwrap_or("best_target");
    let mut written = Vec::new();
    for (dataset, by_method) in group_images(records, rule) {
        let percent: BTreeMap<String, BTreeMap<usize, Vec<f64>>> = by_method
            .into_iter()
            .map(|(m, by_labels)| {
                let pts = by_labels
                    .into_iter()
                    .map(|(l, v)| (l, v.iter().map(|a| 100.0 * a).collect()))
                    .collect();
                (m, pts)
            })
            .collect();
        let lines = accuracy_lines(
            format!(
                "{}: test accuracy vs labels per class ({rule})",
                dataset_title(&dataset)
            ),
            "Labelled images per class",
            "Test accuracy (%)",
            &percent,
        );
        written.extend(both!(
            out,
            format!("accuracy_vs_labels_{dataset}"),
            (1000, 520),
            draw_lines,
            &lines
        ));
    }
    Ok(written)
}

/// Accuracy per method per dataset; also the datasets that have results.
fn accuracy_by_dataset(
    records: &[Record],
    rule: &str,
    out: &Path,
) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut written = Vec::new();
    let mut by_ds: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for r in records {
        let v = r.accuracy(rule);
        if v.is_finite() {
            by_ds
                .entry(r.job.dataset.clone())
                .or_default()
                .entry(r.job.method_label())
                .or_default()
                .push(v);
        }
    }
    let methods = sorted_methods(by_ds.values().flat_map(|m| m.keys()));
    let bars = Bars {
        title: format!("Target-test accuracy per dataset (selection: {rule})"),
        datasets: by_ds.keys().cloned().collect(),
        methods: methods.clone(),
        values: by_ds
            .values()
            .map(|m| {
                methods
                    .iter()
                    .map(|k| m.get(k).cloned().unwrap_or_default())
                    .collect()
            })
            .collect(),
    };
    let width =
        (700 + 120 * bars.datasets.len() as u32 * methods.len().max(1) as u32 / 2).min(1600);
    written.extend(both!(
        out,
        "accuracy_by_dataset",
        (width, 500),
        draw_bars,
        &bars
    ));

    Ok((written, by_ds.keys().cloned().collect()))
}

/// Accuracy vs number of sources (when the dataset has at least two source counts).
fn accuracy_vs_sources(
    records: &[Record],
    dataset: &str,
    rule: &str,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut series: BTreeMap<String, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.job.dataset == dataset && r.job.method.data_needs().sources)
    {
        let v = r.accuracy(rule);
        if v.is_finite() {
            series
                .entry(r.job.method_label())
                .or_default()
                .entry(r.job.sources.len())
                .or_default()
                .push(100.0 * v);
        }
    }
    let ns: std::collections::BTreeSet<usize> =
        series.values().flat_map(|m| m.keys().copied()).collect();
    if ns.len() < 2 {
        return Ok(Vec::new());
    }
    let lines = accuracy_lines(
        format!(
            "{}: accuracy vs number of source domains ({rule})",
            dataset_title(dataset)
        ),
        "Number of source domains",
        "Target-test accuracy (%)",
        &series,
    );
    written.extend(both!(
        out,
        format!("accuracy_vs_sources_{dataset}"),
        (1000, 520),
        draw_lines,
        &lines
    ));
    Ok(written)
}

/// Training curves of a dataset, averaged over runs per method.
fn training_curves(records: &[Record], dataset: &str, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut per: BTreeMap<String, BTreeMap<u64, (Vec<f64>, Vec<f64>)>> = BTreeMap::new();
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r.job.dataset == dataset) {
        let rows = read_metrics(&r.run_dir)?;
        if rows.is_empty() {
            continue;
        }
        *runs.entry(r.job.method_label()).or_default() += 1;
        let m = per.entry(r.job.method_label()).or_default();
        for (s, a, l) in rows {
            let e = m.entry(s as u64).or_default();
            e.0.push(100.0 * a);
            if l.is_finite() {
                e.1.push(l);
            }
        }
    }
    if per.is_empty() {
        return Ok(Vec::new());
    }
    let order = sorted_methods(per.keys());
    let curves = Curves {
        title: format!(
            "{}: training curves (mean ± std over {})",
            dataset_title(dataset),
            runs_per_method(&runs)
        ),
        series: order
            .iter()
            .map(|m| {
                (
                    m.clone(),
                    per[m]
                        .iter()
                        .map(|(s, (a, l))| (*s as f64, a.clone(), l.clone()))
                        .collect(),
                )
            })
            .collect(),
    };
    written.extend(both!(
        out,
        format!("training_curves_{dataset}"),
        (1300, 500),
        draw_curves,
        &curves
    ));
    Ok(written)
}

/// Accuracy vs DA-WS proportion noise (when codats_ws ran with several noises).
fn ws_noise_figure(
    records: &[Record],
    dataset: &str,
    rule: &str,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut noise: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    let mut refs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.job.dataset == dataset) {
        let v = r.accuracy(rule);
        if !v.is_finite() {
            continue;
        }
        if r.job.method.info().uses_proportions {
            let n = r.config.method.ws_noise.unwrap_or(0.0);
            noise.entry(n.to_bits()).or_default().push(100.0 * v);
        } else if r.job.method.data_needs().sources {
            refs.entry(r.job.method.as_str().to_string())
                .or_default()
                .push(100.0 * v);
        }
    }
    if noise.len() < 2 {
        return Ok(Vec::new());
    }
    let mut pts: Vec<(f64, Vec<f64>)> = noise
        .into_iter()
        .map(|(b, v)| (f64::from_bits(b), v))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lines = Lines {
        title: format!(
            "{}: CoDATS-WS accuracy vs label-proportion noise ({rule})",
            dataset_title(dataset)
        ),
        x_desc: "Noise in target label proportions (L1 distance)".into(),
        y_desc: "Target-test accuracy (%)".into(),
        series: vec![("codats_ws".into(), pts)],
        references: sorted_methods(refs.keys())
            .into_iter()
            .map(|m| {
                let y = mean(&refs[&m]);
                (m, y)
            })
            .collect(),
        y_range: None,
        legend_title: "Method (dashed: mean)".into(),
        integer_x: false,
    };
    written.extend(both!(
        out,
        format!("ws_noise_{dataset}"),
        (1000, 520),
        draw_lines,
        &lines
    ));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_titles_count_runs_per_method() {
        let m = |v: &[(&str, usize)]| -> BTreeMap<String, usize> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        // 2 pairs x 4 methods: 2 runs each, not "8 runs".
        let four = m(&[
            ("none", 2),
            ("codats", 2),
            ("codats_ws", 2),
            ("target_only", 2),
        ]);
        assert_eq!(runs_per_method(&four), "2 runs per method");
        assert_eq!(
            runs_per_method(&m(&[("a", 1), ("b", 3)])),
            "1–3 runs per method"
        );
        assert_eq!(runs_per_method(&m(&[("a", 1)])), "1 run per method");
    }
}
