//! `metrics.csv`: one row per evaluation with training losses averaged since the previous row.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Columns before a method's own scalars.
pub const LEADING: [&str; 2] = ["step", "loss"];
/// Columns after a method's own scalars.
pub const TRAILING: [&str; 3] = ["source_valid_acc", "target_valid_acc", "steps_per_s"];

/// metrics.csv's columns for a method that logs `scalars` ([`crate::methods::Method::scalars`]).
pub fn columns(scalars: &[&str]) -> Vec<String> {
    LEADING
        .iter()
        .chain(scalars)
        .chain(TRAILING.iter())
        .map(|c| c.to_string())
        .collect()
}

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

    /// The sums of a row not yet written, for a checkpoint taken between two evaluations: a run
    /// resumed from it continues them ([`Accumulator::resume`]) and writes the row the
    /// uninterrupted run writes.
    pub fn pending(&self) -> Pending {
        Pending {
            n: self.n,
            sums: self
                .sums
                .iter()
                .map(|&(k, s)| (k.to_string(), s.to_bits()))
                .collect(),
        }
    }

    /// Continues the sums saved by [`Accumulator::pending`]. `scalars` are the method's (the
    /// loss is implicit); a saved name outside them belongs to another run and is an error.
    pub fn resume(pending: &Pending, scalars: &[&'static str]) -> Result<Self> {
        let mut sums = Vec::with_capacity(pending.sums.len());
        for (k, bits) in &pending.sums {
            let Some(&name) = std::iter::once(&"loss")
                .chain(scalars)
                .find(|n| **n == k.as_str())
            else {
                bail!(
                    "the checkpoint's unfinished metrics row has a column `{k}` that this \
                     method does not log ({}); the checkpoint belongs to another run",
                    scalars.join(",")
                );
            };
            sums.push((name, f64::from_bits(*bits)));
        }
        Ok(Self { n: pending.n, sums })
    }

    /// The row for this evaluation: the mean of every scalar added since the last row, then the
    /// validation accuracies and speed.
    pub fn row(&self, step: usize, source_valid: f64, target_valid: f64, steps_per_s: f64) -> Row {
        let n = self.n.max(1) as f64;
        let mut values: Vec<(&'static str, f64)> =
            self.sums.iter().map(|&(k, s)| (k, s / n)).collect();
        values.push(("source_valid_acc", source_valid));
        values.push(("target_valid_acc", target_valid));
        values.push(("steps_per_s", steps_per_s));
        Row { step, values }
    }
}

/// The part of a metrics.csv row summed so far (steps since the last row, and each column's sum
/// as the bits of its `f64`, so that a resumed run continues exactly).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Steps summed.
    pub n: usize,
    /// Column name and the `f64::to_bits` of its sum, in first-logged order.
    pub sums: Vec<(String, u64)>,
}

impl Pending {
    /// Whether nothing has been summed (the checkpoint fell right after an evaluation).
    pub fn is_empty(&self) -> bool {
        self.n == 0 && self.sums.is_empty()
    }
}

/// One metrics.csv row: named values (a column without a value is written as an empty field).
#[derive(Debug, Clone)]
pub struct Row {
    /// The step index of the evaluation.
    pub step: usize,
    /// Column name and value.
    pub values: Vec<(&'static str, f64)>,
}

impl Row {
    /// The value of column `name`, if the row has one.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|&(_, v)| v)
    }

    /// A short human-readable summary for the progress bar and logs.
    pub fn summary(&self) -> String {
        let v = |k: &str| self.get(k).unwrap_or(f64::NAN);
        format!(
            "loss {:.3}  src-valid {:.1}%  tgt-valid {:.1}%",
            v("loss"),
            100.0 * v("source_valid_acc"),
            100.0 * v("target_valid_acc")
        )
    }
}

/// An append-only metrics.csv writer.
pub struct MetricsLog {
    out: BufWriter<File>,
    header: Vec<String>,
    /// The file, for messages.
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log at `path` for appending, creating it with the header [`columns`]`(scalars)`
    /// if needed. An existing log (a resumed run) keeps its header, which must hold every column.
    pub fn open(path: &Path, scalars: &[&str]) -> Result<Self> {
        let want = columns(scalars);
        let fresh = !path.exists() || std::fs::metadata(path)?.len() == 0;
        let header = if fresh {
            want.clone()
        } else {
            let first = BufReader::new(File::open(path)?)
                .lines()
                .next()
                .transpose()
                .with_context(|| format!("reading {}", path.display()))?
                .unwrap_or_default();
            let header: Vec<String> = first.split(',').map(str::to_string).collect();
            if let Some(missing) = want.iter().find(|c| !header.contains(c)) {
                bail!(
                    "{} has no column `{missing}` (its header: {first}); it belongs to another run",
                    path.display()
                );
            }
            header
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut out = BufWriter::new(file);
        if fresh {
            writeln!(out, "{}", header.join(","))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(Self {
            out,
            header,
            path: path.to_path_buf(),
        })
    }

    /// Appends a row. A value whose column the header lacks is an error, never dropped.
    pub fn write(&mut self, row: &Row) -> Result<()> {
        if let Some((k, _)) = row
            .values
            .iter()
            .find(|(k, _)| !self.header.iter().any(|h| h == k))
        {
            bail!(
                "scalar `{k}` has no column in metrics.csv ({}); the method must declare it in scalars()",
                self.header.join(",")
            );
        }
        let mut line = row.step.to_string();
        for col in &self.header[1..] {
            line.push(',');
            if let Some(v) = row.get(col) {
                line.push_str(&format!("{v:.6}"));
            }
        }
        writeln!(self.out, "{line}").with_context(|| format!("writing {}", self.path.display()))?;
        Ok(())
    }

    /// Flushes buffered rows to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("codats-metrics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("metrics.csv")
    }

    #[test]
    fn columns_come_from_the_method_and_every_scalar_is_written() {
        let path = tmp("cols");
        let mut log = MetricsLog::open(&path, &["task_loss", "my_scalar"]).unwrap();
        let mut acc = Accumulator::default();
        acc.add(2.0, &[("task_loss", 1.0), ("my_scalar", 0.5)]);
        acc.add(4.0, &[("task_loss", 3.0), ("my_scalar", 1.5)]);
        log.write(&acc.row(10, 0.25, 0.5, 3.0)).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "step,loss,task_loss,my_scalar,source_valid_acc,target_valid_acc,steps_per_s\n\
             10,3.000000,2.000000,1.000000,0.250000,0.500000,3.000000\n"
        );
    }

    #[test]
    fn a_pending_row_resumes_to_the_same_average() {
        let mut whole = Accumulator::default();
        let mut first = Accumulator::default();
        for (l, t) in [(0.1f32, 0.3f32), (0.7, 1.1), (2.9, 0.01)] {
            whole.add(l, &[("task_loss", t)]);
            first.add(l, &[("task_loss", t)]);
        }
        let json = serde_json::to_string(&first.pending()).unwrap();
        let pending: Pending = serde_json::from_str(&json).unwrap();
        let mut resumed = Accumulator::resume(&pending, &["task_loss"]).unwrap();
        for (l, t) in [(1.3f32, 0.2f32), (0.4, 5.0)] {
            whole.add(l, &[("task_loss", t)]);
            resumed.add(l, &[("task_loss", t)]);
        }
        let (a, b) = (whole.row(4, 0.5, 0.5, 1.0), resumed.row(4, 0.5, 0.5, 1.0));
        assert_eq!(format!("{:?}", a.values), format!("{:?}", b.values));
        assert!(Accumulator::default().pending().is_empty());
        let err = Accumulator::resume(&pending, &["domain_loss"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has a column `task_loss` that this method does not log"),
            "{err}"
        );
    }

    #[test]
    fn an_undeclared_scalar_is_an_error_not_dropped() {
        let path = tmp("undeclared");
        let mut log = MetricsLog::open(&path, &["task_loss"]).unwrap();
        let mut acc = Accumulator::default();
        acc.add(1.0, &[("task_loss", 1.0), ("surprise", 2.0)]);
        let err = log
            .write(&acc.row(0, 0.0, 0.0, 1.0))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("scalar `surprise` has no column in metrics.csv"),
            "{err}"
        );
    }

    #[test]
    fn a_resumed_log_keeps_its_header() {
        // A metrics.csv from before the method declared its columns (all nine, fixed).
        let path = tmp("old");
        let old = "step,loss,task_loss,domain_loss,ws_loss,lambda,source_valid_acc,target_valid_acc,steps_per_s";
        std::fs::write(&path, format!("{old}\n10,1,1,,,,0.5,0.5,2\n")).unwrap();
        let mut log = MetricsLog::open(&path, &["task_loss"]).unwrap();
        let mut acc = Accumulator::default();
        acc.add(1.0, &[("task_loss", 1.0)]);
        log.write(&acc.row(20, 0.5, 0.25, 2.0)).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().last().unwrap(),
            "20,1.000000,1.000000,,,,0.500000,0.250000,2.000000"
        );
        // A log without a column the method needs belongs to another run.
        let err = MetricsLog::open(&path, &["task_loss", "cons_loss"])
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("has no column `cons_loss`"),
            "{err}"
        );
    }
}
