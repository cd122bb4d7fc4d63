//! `codats report`: tables, paired tests and figures of a sweep directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// `codats report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Writes results.parquet, results.csv, tables (Markdown, LaTeX), paired t-tests and figures (PNG, SVG)."
)]
pub struct ReportArgs {
    /// Sweep directory.
    pub dir: PathBuf,
    /// Output folder (default: DIR/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Selection rule(s) of the tables (default: the spec's `selection`).
    #[arg(long, value_delimiter = ',')]
    pub rule: Option<Vec<String>>,
}

/// Runs `codats report`.
pub fn run(a: ReportArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(|| a.dir.join("report"));
    let written = crate::report::make_report(&a.dir, &out, a.rule.as_deref())?;
    for w in written {
        println!("wrote {}", w.display());
    }
    Ok(())
}
