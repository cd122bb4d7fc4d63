//! `metrics.csv`: one row per evaluation with training losses averaged since the previous row.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Columns of metrics.csv, in order.
pub const COLUMNS: [&str; 9] = [
    "step",
    "loss",
    "task_loss",
    "domain_loss",
    "ws_loss",
    "lambda",
    "source_valid_acc",
    "target_valid_acc",
    "steps_per_s",
];

/// Averages the loss and named scalars over the steps since the last row.
#[derive(Debug, Default)]
pub struct Accumulator {
    n: usize,
    sums: Vec<(&'static str, f64)>,
}

impl Accumulator {
    /// Adds one step's loss and scalars.
    pub fn add(&mut self, loss: f32, scalars: &[(&'static str, f32)]) {
        self.n += 1;
        self.bump("loss", loss as f64);
        for &(k, v) in scalars {
            self.bump(k, v as f64);
        }
    }

    fn bump(&mut self, k: &'static str, v: f64) {
        match self.sums.iter_mut().find(|(n, _)| *n == k) {
            Some((_, s)) => *s += v,
            None => self.sums.push((k, v)),
        }
    }

    /// The row for this evaluation.
    pub fn row(&self, step: usize, source_valid: f64, target_valid: f64, steps_per_s: f64) -> Row {
        let mean = |k: &str| {
            self.sums
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, s)| s / self.n.max(1) as f64)
        };
        Row {
            step,
            values: vec![
                mean("loss"),
                mean("task_loss"),
                mean("domain_loss"),
                mean("ws_loss"),
                mean("lambda"),
                Some(source_valid),
                Some(target_valid),
                Some(steps_per_s),
            ],
        }
    }
}

/// One metrics.csv row (missing values are written as empty fields).
#[derive(Debug, Clone)]
pub struct Row {
    /// Steps completed.
    pub step: usize,
    /// Values of the columns after `step`.
    pub values: Vec<Option<f64>>,
}

impl Row {
    /// A short human-readable summary for the progress bar and logs.
    pub fn summary(&self) -> String {
        let v = |i: usize| self.values[i].unwrap_or(f64::NAN);
        format!(
            "loss {:.3}  src-valid {:.1}%  tgt-valid {:.1}%",
            v(0),
            100.0 * v(5),
            100.0 * v(6)
        )
    }
}

/// An append-only metrics.csv writer.
pub struct MetricsLog {
    out: BufWriter<File>,
}

impl MetricsLog {
    /// Opens (creating with a header if needed) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<Self> {
        let fresh = !path.exists() || std::fs::metadata(path)?.len() == 0;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut out = BufWriter::new(file);
        if fresh {
            writeln!(out, "{}", COLUMNS.join(","))?;
        }
        Ok(Self { out })
    }

    /// Appends a row.
    pub fn write(&mut self, row: &Row) -> Result<()> {
        let mut line = row.step.to_string();
        for v in &row.values {
            line.push(',');
            if let Some(v) = v {
                line.push_str(&format!("{v:.6}"));
            }
        }
        writeln!(self.out, "{line}")?;
        Ok(())
    }

    /// Flushes buffered rows to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    /// Drops rows logged after `step` (used when resuming from a checkpoint at `step`).
    pub fn truncate_after(path: &Path, step: usize) -> Result<()> {
        if !path.exists() {
            return Ok(());
        }
        let reader = BufReader::new(File::open(path)?);
        let mut kept = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let keep = i == 0
                || line
                    .split(',')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok())
                    .is_some_and(|s| s <= step);
            if keep {
                kept.push(line);
            }
        }
        let mut text = kept.join("\n");
        text.push('\n');
        super::checkpoint::write_atomic(path, text.as_bytes())
    }
}
