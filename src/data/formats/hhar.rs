//! UCI HHAR loader: `Phones_accelerometer.csv`, streamed from the zip (or the extracted file) with
//! bounded memory, windowed per user as the CoDATS reference does.
//!
//! Columns `Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt`. Users `a..i` become domains
//! `0..8`. Rows whose `gt` is `null` are dropped and counted. Each user's rows, in file order with all
//! phone models mixed, are cut into non-overlapping windows of 128 labelled by their last row; like the
//! reference, a window is cut only while `start < rows - 128`. A repeated header line is skipped and
//! counted (the reference skips any line whose `Index` field is `Index`); any other malformed line is
//! an error naming the file, the line and the value.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::finish::{self, Shape};
use super::{DataOptions, Format};
use crate::data::card::{Card, HharCard};
use crate::data::parse::{for_each_line, parse_f32, show, split_fields};
use crate::data::report::{LoadReport, SkipCounter};
use crate::data::source::{locate_member, Input};
use crate::data::window::{WindowSink, WindowSpec, Windower};
use crate::data::{DataError, Dataset};

/// The UCI HHAR format: the phones accelerometer CSV, windowed per user.
pub struct Hhar;

impl Format for Hhar {
    fn inputs(&self, card: &Card, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        inputs(dir, card)
    }

    fn parse(
        &self,
        card: &Card,
        dir: &Path,
        _opts: &DataOptions,
    ) -> Result<(Dataset, LoadReport), DataError> {
        load(dir, card)
    }
}

/// Reasons rows are skipped.
const SKIPS: &[&str] = &["gt is null (unlabelled)", "repeated header line"];

/// The input file (the CSV, or the CSV inside the archive) in `dir`.
pub fn input(dir: &Path, card: &Card) -> Result<Input, DataError> {
    let h = hhar_card(card)?;
    locate_member(dir, card, &h.member)
}

/// Files whose contents determine the dataset (for the cache key).
pub fn inputs(dir: &Path, card: &Card) -> Result<Vec<PathBuf>, DataError> {
    Ok(vec![input(dir, card)?.disk_file().to_path_buf()])
}

/// Loads UCI HHAR from `dir` (the archive, the extracted folder, or the CSV itself).
pub fn load(dir: &Path, card: &Card) -> Result<(Dataset, LoadReport), DataError> {
    let input = input(dir, card)?;
    let (ds, mut report) = input.with_reader(|r, name| parse(r, name, card))?;
    report.inputs = vec![input.display()];
    Ok((ds, report))
}

fn hhar_card(card: &Card) -> Result<&HharCard, DataError> {
    finish::table(card, card.hhar.as_ref(), "hhar")
}

/// Parses HHAR CSV text from `reader` (`file` names it in messages) into windows per user.
pub fn parse(
    reader: &mut dyn Read,
    file: &str,
    card: &Card,
) -> Result<(Dataset, LoadReport), DataError> {
    let h = hhar_card(card)?;
    let spec = finish::window_spec(card)?;
    let mut rows = Rows::new(card, h, spec, file);
    for_each_line(reader, file, |line, text| rows.line(line, text))?;

    let mut report = LoadReport {
        inputs: vec![file.to_string()],
        rows: rows.rows,
        ..Default::default()
    };
    rows.skips.fold_into(&mut report, file);
    let sinks = rows.sinks.into_iter().enumerate();
    let (domains, empty) = finish::domains(sinks.map(|(i, sink)| (i as u32, sink)));
    let empty: Vec<String> = empty
        .into_iter()
        .map(|i| {
            let i = i as usize;
            format!(
                "{} ({} labelled rows)",
                h.users[i],
                rows.windowers[i].samples()
            )
        })
        .collect();
    report.note(format!(
        "domains 0..{} are users {}",
        h.users.len() - 1,
        h.users.join(", ")
    ));
    if !empty.is_empty() {
        report.note(format!(
            "users with too few labelled rows for one window (not domains): {}",
            empty.join(", ")
        ));
    }
    let shape = Shape {
        name: card.name.clone(),
        channels: 3,
        length: spec.length,
        class_names: card.classes.clone(),
        zscore: card.zscore,
    };
    finish::dataset(shape, domains, report, || {
        format!(
            "{file} has no user with more than {} labelled rows",
            spec.length
        )
    })
}

/// The CSV read so far: each user's windows, and what was counted and skipped.
struct Rows<'a> {
    card: &'a Card,
    h: &'a HharCard,
    /// Names the file in messages.
    file: &'a str,
    users: Vec<&'a [u8]>,
    classes: Vec<&'a [u8]>,
    header: Vec<&'a [u8]>,
    /// One windower and one sink per user, in the card's user order.
    windowers: Vec<Windower>,
    sinks: Vec<WindowSink>,
    skips: SkipCounter,
    /// Data rows read (not the header).
    rows: u64,
}

impl<'a> Rows<'a> {
    fn new(card: &'a Card, h: &'a HharCard, spec: WindowSpec, file: &'a str) -> Self {
        Rows {
            card,
            h,
            file,
            users: h.users.iter().map(|u| u.as_bytes()).collect(),
            classes: card.classes.iter().map(|c| c.as_bytes()).collect(),
            header: h.header.iter().map(|c| c.as_bytes()).collect(),
            windowers: h.users.iter().map(|_| Windower::new(spec, 3)).collect(),
            sinks: h.users.iter().map(|_| WindowSink::default()).collect(),
            skips: SkipCounter::new(SKIPS),
            rows: 0,
        }
    }

    fn bad(&self, line: usize, reason: String) -> DataError {
        DataError::BadLine {
            file: self.file.to_string(),
            line,
            reason,
        }
    }

    /// The finite number in field `column` of line `line`.
    fn number(&self, line: usize, column: &str, tok: &[u8]) -> Result<f32, DataError> {
        match parse_f32(tok.trim_ascii()) {
            Some(v) if v.is_finite() => Ok(v),
            Some(_) => Err(self.bad(
                line,
                format!("{column} value {:?} is not finite", show(tok)),
            )),
            None => Err(self.bad(
                line,
                format!("{column} value {:?} is not a number", show(tok)),
            )),
        }
    }

    /// Reads line `line` (1-based): the header, a repeated header, an unlabelled row, or a sample.
    fn line(&mut self, line: usize, text: &[u8]) -> Result<(), DataError> {
        let h = self.h;
        let mut f = [&b""[..]; 10];
        let n = split_fields(text, b',', &mut f);
        if line == 1 {
            if n != 10
                || f.iter()
                    .zip(&self.header)
                    .any(|(a, b)| a.trim_ascii() != *b)
            {
                return Err(self.bad(
                    line,
                    format!(
                        "expected the header {:?}, found {:?}",
                        h.header.join(","),
                        show(text)
                    ),
                ));
            }
            return Ok(());
        }
        if n != 10 {
            return Err(self.bad(
                line,
                if text.trim_ascii().is_empty() {
                    "blank line; expected 10 comma-separated fields".to_string()
                } else {
                    format!(
                        "expected 10 comma-separated fields ({}), found {n}: {:?}",
                        h.header.join(","),
                        show(text)
                    )
                },
            ));
        }
        if f[0] == self.header[0] {
            self.skips.add(1, line);
            return Ok(());
        }
        self.rows += 1;
        let Some(user) = self.users.iter().position(|u| *u == f[6]) else {
            return Err(self.bad(
                line,
                format!(
                    "unknown User {:?}; expected one of {}",
                    show(f[6]),
                    h.users.join(", ")
                ),
            ));
        };
        let gt = f[9];
        if gt == h.null_label.as_bytes() {
            self.skips.add(0, line);
            return Ok(());
        }
        let Some(class) = self.classes.iter().position(|c| *c == gt) else {
            return Err(self.bad(
                line,
                format!(
                    "unknown activity gt {:?}; expected one of {} or {}",
                    show(gt),
                    self.card.classes.join(", "),
                    h.null_label
                ),
            ));
        };
        let sample = [
            self.number(line, "x", f[3])?,
            self.number(line, "y", f[4])?,
            self.number(line, "z", f[5])?,
        ];
        self.windowers[user].push(&sample, class as u32, &mut self.sinks[user]);
        Ok(())
    }
}
