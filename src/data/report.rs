//! What a loader did besides producing windows: rows read, rows skipped (counted, by reason, with the
//! first place each reason occurred) and notes such as renumbered domains. Never silent.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One kind of skipped input row and how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// Why these rows were skipped (`gt is null`, `blank line`).
    pub reason: String,
    /// How many rows.
    pub count: u64,
    /// Where the first one was (`file: line N`).
    pub first: String,
}

/// The account of one load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Input files read.
    pub inputs: Vec<String>,
    /// Data rows (samples, records or examples) read.
    pub rows: u64,
    /// Rows skipped, by reason, in the order reasons were first met.
    pub skipped: Vec<Skip>,
    /// Other facts worth knowing (kept users, domain renumbering, excluded segments).
    pub notes: Vec<String>,
}

impl LoadReport {
    /// Counts `n` skipped rows for `reason`, remembering where the first was.
    pub fn skip(&mut self, reason: &str, n: u64, first: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        match self.skipped.iter_mut().find(|s| s.reason == reason) {
            Some(s) => s.count += n,
            None => self.skipped.push(Skip {
                reason: reason.to_string(),
                count: n,
                first: first(),
            }),
        }
    }

    /// Adds a note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Rows skipped in all.
    pub fn skipped_rows(&self) -> u64 {
        self.skipped.iter().map(|s| s.count).sum()
    }

    /// How many rows were skipped for `reason` (0 if none).
    pub fn skipped_for(&self, reason: &str) -> u64 {
        self.skipped
            .iter()
            .find(|s| s.reason == reason)
            .map_or(0, |s| s.count)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "read {} rows from {}",
            self.rows,
            if self.inputs.len() == 1 {
                self.inputs[0].clone()
            } else {
                format!("{} files", self.inputs.len())
            }
        )?;
        if self.skipped.is_empty() {
            writeln!(f, "skipped no rows")?;
        }
        for s in &self.skipped {
            writeln!(
                f,
                "skipped {} rows: {} (first at {})",
                s.count, s.reason, s.first
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// Per-reason skip counters for hot loops: index-based, folded into a [`LoadReport`] at the end.
#[derive(Debug)]
pub(crate) struct SkipCounter {
    reasons: &'static [&'static str],
    counts: Vec<u64>,
    first: Vec<Option<usize>>,
}

impl SkipCounter {
    /// Counters for these reasons (indexes into `reasons` are used by [`SkipCounter::add`]).
    pub(crate) fn new(reasons: &'static [&'static str]) -> SkipCounter {
        SkipCounter {
            reasons,
            counts: vec![0; reasons.len()],
            first: vec![None; reasons.len()],
        }
    }

    /// Counts one row skipped for reason `i`, at 1-based `line`.
    #[inline]
    pub(crate) fn add(&mut self, i: usize, line: usize) {
        self.counts[i] += 1;
        if self.first[i].is_none() {
            self.first[i] = Some(line);
        }
    }

    /// Adds the counts to `report`, naming `file`.
    pub(crate) fn fold_into(&self, report: &mut LoadReport, file: &str) {
        for (i, reason) in self.reasons.iter().enumerate() {
            if let Some(line) = self.first[i] {
                report.skip(reason, self.counts[i], || format!("{file}: line {line}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_counted_by_reason_and_displayed() {
        let mut c = SkipCounter::new(&["blank line", "gt is null"]);
        c.add(1, 3);
        c.add(1, 9);
        c.add(0, 5);
        let mut r = LoadReport {
            inputs: vec!["f.csv".into()],
            rows: 10,
            ..Default::default()
        };
        c.fold_into(&mut r, "f.csv");
        r.note("kept 2 users");
        assert_eq!(r.skipped_rows(), 3);
        assert_eq!(r.skipped_for("gt is null"), 2);
        assert_eq!(
            r.to_string(),
            "read 10 rows from f.csv\n\
             skipped 1 rows: blank line (first at f.csv: line 5)\n\
             skipped 2 rows: gt is null (first at f.csv: line 3)\n\
             note: kept 2 users\n"
        );
    }
}
