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

use super::card::Card;
use super::parse::{for_each_line, parse_f32, show, split_fields};
use super::report::{LoadReport, SkipCounter};
use super::source::{locate_member, Input};
use super::window::{shrunk, WindowSink, Windower};
use super::{DataError, Dataset, DomainData};

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

fn hhar_card(card: &Card) -> Result<&super::card::HharCard, DataError> {
    card.hhar.as_ref().ok_or_else(|| DataError::Spec {
        name: card.name.clone(),
        reason: "no [hhar] table".into(),
    })
}

/// Parses HHAR CSV text from `reader` (`file` names it in messages) into windows per user.
pub fn parse(
    reader: &mut dyn Read,
    file: &str,
    card: &Card,
) -> Result<(Dataset, LoadReport), DataError> {
    let h = hhar_card(card)?;
    let spec = card.window.ok_or_else(|| DataError::Spec {
        name: card.name.clone(),
        reason: "no [window] table".into(),
    })?;
    spec.check()?;
    let users: Vec<&[u8]> = h.users.iter().map(|u| u.as_bytes()).collect();
    let classes: Vec<&[u8]> = card.classes.iter().map(|c| c.as_bytes()).collect();
    let null = h.null_label.as_bytes();
    let header: Vec<&[u8]> = h.header.iter().map(|c| c.as_bytes()).collect();

    let mut windowers: Vec<Windower> = users.iter().map(|_| Windower::new(spec, 3)).collect();
    let mut sinks: Vec<WindowSink> = users.iter().map(|_| WindowSink::default()).collect();
    let mut skips = SkipCounter::new(SKIPS);
    let mut rows = 0u64;
    let bad = |line: usize, reason: String| DataError::BadLine {
        file: file.to_string(),
        line,
        reason,
    };
    let number = |line: usize, column: &str, tok: &[u8]| -> Result<f32, DataError> {
        match parse_f32(tok.trim_ascii()) {
            Some(v) if v.is_finite() => Ok(v),
            Some(_) => Err(bad(
                line,
                format!("{column} value {:?} is not finite", show(tok)),
            )),
            None => Err(bad(
                line,
                format!("{column} value {:?} is not a number", show(tok)),
            )),
        }
    };

    for_each_line(reader, file, |line, text| {
        let mut f = [&b""[..]; 10];
        let n = split_fields(text, b',', &mut f);
        if line == 1 {
            if n != 10 || f.iter().zip(&header).any(|(a, b)| a.trim_ascii() != *b) {
                return Err(bad(
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
            return Err(bad(
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
        if f[0] == header[0] {
            skips.add(1, line);
            return Ok(());
        }
        rows += 1;
        let Some(user) = users.iter().position(|u| *u == f[6]) else {
            return Err(bad(
                line,
                format!(
                    "unknown User {:?}; expected one of {}",
                    show(f[6]),
                    h.users.join(", ")
                ),
            ));
        };
        let gt = f[9];
        if gt == null {
            skips.add(0, line);
            return Ok(());
        }
        let Some(class) = classes.iter().position(|c| *c == gt) else {
            return Err(bad(
                line,
                format!(
                    "unknown activity gt {:?}; expected one of {} or {}",
                    show(gt),
                    card.classes.join(", "),
                    h.null_label
                ),
            ));
        };
        let sample = [
            number(line, "x", f[3])?,
            number(line, "y", f[4])?,
            number(line, "z", f[5])?,
        ];
        windowers[user].push(&sample, class as u32, &mut sinks[user]);
        Ok(())
    })?;

    let mut report = LoadReport {
        inputs: vec![file.to_string()],
        rows,
        ..Default::default()
    };
    skips.fold_into(&mut report, file);
    let mut domains = Vec::new();
    let mut empty = Vec::new();
    for (i, (sink, w)) in sinks.into_iter().zip(&windowers).enumerate() {
        if sink.y.is_empty() {
            empty.push(format!("{} ({} labelled rows)", h.users[i], w.samples()));
            continue;
        }
        domains.push(DomainData {
            id: i as u32,
            x: shrunk(sink.x),
            y: sink.y,
            valid_lengths: None,
        });
    }
    report.note(format!(
        "domains 0..{} are users {}",
        users.len() - 1,
        h.users.join(", ")
    ));
    if !empty.is_empty() {
        report.note(format!(
            "users with too few labelled rows for one window (not domains): {}",
            empty.join(", ")
        ));
    }
    if domains.is_empty() {
        return Err(DataError::NoWindows {
            name: card.name.clone(),
            reason: format!(
                "{file} has no user with more than {} labelled rows",
                spec.length
            ),
        });
    }
    Ok((
        Dataset {
            name: card.name.clone(),
            channels: 3,
            length: spec.length,
            class_names: card.classes.clone(),
            zscore: card.zscore,
            domains,
        },
        report,
    ))
}
