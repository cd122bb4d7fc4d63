//! `codats datasets info --plot FILE`: the class balance of every domain as stacked bars (PNG or SVG).
//!
//! Text is drawn with a TrueType font found at run time: `$CODATS_FONT`, else a few common system
//! locations (DejaVu Sans, Liberation Sans, Arial, Helvetica).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use super::{DataError, Dataset};

/// Environment variable naming the `.ttf` font for plot labels.
pub const FONT_ENV: &str = "CODATS_FONT";

/// Common font files, tried in order.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font for plotters' "sans-serif" once; the error says how to provide one.
fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os(FONT_ENV).filter(|v| !v.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        candidates.extend(FONT_PATHS.iter().map(PathBuf::from));
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font found for the plot's labels (tried {}); set {FONT_ENV}=/path/to/font.ttf",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
    .clone()
}

/// Class counts per domain: `[domain][class]`.
pub fn class_counts(ds: &Dataset) -> Vec<Vec<usize>> {
    ds.domains
        .iter()
        .map(|d| {
            let mut c = vec![0usize; ds.n_classes()];
            for &y in &d.y {
                if let Some(n) = c.get_mut(y as usize) {
                    *n += 1;
                }
            }
            c
        })
        .collect()
}

/// Draws the class balance per domain of `ds` to `path` (`.png` or `.svg`).
pub fn class_balance(ds: &Dataset, path: &Path) -> Result<(), DataError> {
    ensure_font()
        .map_err(|r| DataError::Options(format!("cannot draw {}: {r}", path.display())))?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let width = (160 + 28 * ds.domains.len() as u32).clamp(640, 2400);
    let size = (width, 520);
    let result = match ext.as_str() {
        "png" => draw(BitMapBackend::new(path, size).into_drawing_area(), ds),
        "svg" => draw(SVGBackend::new(path, size).into_drawing_area(), ds),
        _ => {
            return Err(DataError::Options(format!(
                "--plot {}: use a .png or .svg file name",
                path.display()
            )))
        }
    };
    result.map_err(|reason| DataError::BadFile {
        file: path.display().to_string(),
        reason: format!("cannot draw the plot: {reason}"),
    })
}

/// The drawing itself, for any backend.
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    ds: &Dataset,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let counts = class_counts(ds);
    let max = counts
        .iter()
        .map(|c| c.iter().sum::<usize>())
        .max()
        .unwrap_or(1)
        .max(1);
    let n = ds.domains.len().max(1);
    let ids: Vec<String> = ds.domains.iter().map(|d| d.id.to_string()).collect();
    let (width, _) = root.dim_in_pixel();
    let legend_width = 24 + 8 * ds.class_names.iter().map(|c| c.len()).max().unwrap_or(4) as u32;
    let (plot_area, legend_area) = root.split_horizontally(width.saturating_sub(legend_width + 10));
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(
            format!("{}: windows per class in each domain", ds.name),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..max as f64 * 1.05)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("domain")
        .y_desc("windows")
        .x_labels(n + 1)
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                ids.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for class in 0..ds.n_classes() {
        let color = Palette99::pick(class).to_rgba();
        let bars: Vec<Rectangle<(f64, f64)>> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let below: usize = c[..class].iter().sum();
                let top = below + c[class];
                Rectangle::new(
                    [(i as f64 - 0.4, below as f64), (i as f64 + 0.4, top as f64)],
                    color.filled(),
                )
            })
            .collect();
        chart.draw_series(bars).map_err(|x| e(&x))?;
        let y = 48 + 20 * class as i32;
        legend_area
            .draw(&Rectangle::new([(0, y), (12, y + 12)], color.filled()))
            .map_err(|x| e(&x))?;
        legend_area
            .draw(&Text::new(
                ds.class_names[class].clone(),
                (18, y),
                ("sans-serif", 14).into_font(),
            ))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
