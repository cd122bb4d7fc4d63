//! WISDM AR / AT loader: raw `user,activity,timestamp,x,y,z;` records, streamed from the tar.gz (or the
//! extracted file), with the CoDATS reference's handling of the published files' quirks.
//!
//! Each line is stripped, every `;` removed and the rest split at `,`. What happens to each kind of line:
//!
//! | line | example | here (and in the reference) |
//! |---|---|---|
//! | a record | `33,Jogging,49105962326000,-0.69,12.68,0.50;` | kept |
//! | trailing comma | `21,Jogging,117687701514000,3.17,9,1.23,;` | kept (7 fields, the last empty) |
//! | blank line | `` | skipped, counted |
//! | missing fields | `577,,;` | skipped, counted |
//! | empty x, y or z | `11,Walking,1867172313000,4.4,4.4,;` | skipped, counted |
//! | several records on one line | `…,0.50;33,Jogging,…;` | skipped, counted (the reference sees > 7 fields) |
//! | other field counts | | skipped, counted |
//! | extra 7th field | `1,Walking,0,1,2,3,9;` | kept, the 7th field ignored, counted in the notes |
//! | a bad user id, activity or number | `x1,Walking,…` | error naming file, line and value |
//!
//! Users with more than `user_threshold` (19 200) records, counting as the reference does (a user's
//! count starts at zero, and a record with an empty z written `x,y,;` still counts), are kept and
//! renumbered `0..n-1` in increasing user id; `all_users` keeps everyone. Each kept user's records, in
//! file order, are cut into non-overlapping windows of 128 labelled by their last record, a window
//! being cut only while `start < records - 128` (the reference's bound).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::card::{Card, WisdmCard};
use super::parse::{for_each_line, parse_f32, parse_i64, show, split_fields};
use super::report::{LoadReport, SkipCounter};
use super::source::{locate_member, Input};
use super::window::{cut, shrunk, WindowSink};
use super::{DataError, Dataset, DomainData};

/// Reasons lines are skipped (indexes used below).
const SKIPS: &[&str] = &[
    "blank line",
    "missing fields (fewer than 6)",
    "empty x, y or z value",
    "several records on one line",
    "more than 7 fields",
];
const BLANK: usize = 0;
const MISSING: usize = 1;
const EMPTY_XYZ: usize = 2;
const SEVERAL: usize = 3;
const TOO_MANY: usize = 4;

/// The raw records input in `dir`.
pub fn input(dir: &Path, card: &Card) -> Result<Input, DataError> {
    locate_member(dir, card, &wisdm_card(card)?.member)
}

/// Files whose contents determine the dataset (for the cache key).
pub fn inputs(dir: &Path, card: &Card) -> Result<Vec<PathBuf>, DataError> {
    Ok(vec![input(dir, card)?.disk_file().to_path_buf()])
}

/// Loads WISDM AR or AT (as `card` says) from `dir`: the tar.gz, the extracted tree, or the raw file.
pub fn load(dir: &Path, card: &Card, all_users: bool) -> Result<(Dataset, LoadReport), DataError> {
    let input = input(dir, card)?;
    let (ds, mut report) = input.with_reader(|r, name| parse(r, name, card, all_users))?;
    report.inputs = vec![input.display()];
    Ok((ds, report))
}

fn wisdm_card(card: &Card) -> Result<&WisdmCard, DataError> {
    card.wisdm.as_ref().ok_or_else(|| DataError::Spec {
        name: card.name.clone(),
        reason: "no [wisdm] table".into(),
    })
}

/// One user's records, in file order.
#[derive(Default)]
struct UserData {
    /// Interleaved x, y, z.
    xyz: Vec<f32>,
    /// Class per record.
    y: Vec<u32>,
    /// Records counted toward the threshold, as the reference counts them.
    counted: u64,
}

/// Parses WISDM raw text from `reader` (`file` names it in messages).
pub fn parse(
    reader: &mut dyn Read,
    file: &str,
    card: &Card,
    all_users: bool,
) -> Result<(Dataset, LoadReport), DataError> {
    let w = wisdm_card(card)?;
    let spec = card.window.ok_or_else(|| DataError::Spec {
        name: card.name.clone(),
        reason: "no [window] table".into(),
    })?;
    spec.check()?;
    let classes: Vec<&[u8]> = card.classes.iter().map(|c| c.as_bytes()).collect();
    let mut users: BTreeMap<i64, UserData> = BTreeMap::new();
    let mut skips = SkipCounter::new(SKIPS);
    let mut rows = 0u64;
    let mut seventh = (0u64, 0usize); // records with a non-empty 7th field: count, first line
    let mut clean: Vec<u8> = Vec::with_capacity(256);
    let bad = |line: usize, reason: String| DataError::BadLine {
        file: file.to_string(),
        line,
        reason,
    };

    for_each_line(reader, file, |line, raw| {
        let text = raw.trim_ascii();
        if text.is_empty() {
            skips.add(BLANK, line);
            return Ok(());
        }
        // The reference's threshold count splits the line as is (semicolons kept).
        let mut rf = [&b""[..]; 7];
        let raw_n = split_fields(text, b',', &mut rf);
        let counts_toward_threshold = (raw_n == 6 || raw_n == 7)
            && !rf[3].is_empty()
            && !rf[4].is_empty()
            && !rf[5].is_empty();

        clean.clear();
        clean.extend(text.iter().copied().filter(|&b| b != b';'));
        let mut f = [&b""[..]; 7];
        let n = split_fields(&clean, b',', &mut f);
        if n < 6 {
            skips.add(MISSING, line);
            return Ok(());
        }
        if n > 7 {
            let records = memchr::memchr_iter(b';', text).count();
            skips.add(if records > 1 { SEVERAL } else { TOO_MANY }, line);
            return Ok(());
        }
        if f[3].trim_ascii().is_empty()
            || f[4].trim_ascii().is_empty()
            || f[5].trim_ascii().is_empty()
        {
            skips.add(EMPTY_XYZ, line);
            if counts_toward_threshold {
                if let Some(user) = parse_i64(f[0].trim_ascii()) {
                    users.entry(user).or_default().counted += 1;
                }
            }
            return Ok(());
        }
        let user = parse_i64(f[0].trim_ascii())
            .ok_or_else(|| bad(line, format!("user id {:?} is not an integer", show(f[0]))))?;
        let activity = f[1].trim_ascii();
        let class = classes.iter().position(|c| *c == activity).ok_or_else(|| {
            bad(
                line,
                format!(
                    "unknown activity {:?}; expected one of {}",
                    show(f[1]),
                    card.classes.join(", ")
                ),
            )
        })?;
        let mut xyz = [0f32; 3];
        for (k, (name, tok)) in [("x", f[3]), ("y", f[4]), ("z", f[5])]
            .into_iter()
            .enumerate()
        {
            xyz[k] = match parse_f32(tok.trim_ascii()) {
                Some(v) if v.is_finite() => v,
                _ => {
                    return Err(bad(
                        line,
                        format!("{name} value {:?} is not a finite number", show(tok)),
                    ))
                }
            };
        }
        if n == 7 && !f[6].trim_ascii().is_empty() {
            if seventh.0 == 0 {
                seventh.1 = line;
            }
            seventh.0 += 1;
        }
        rows += 1;
        let u = users.entry(user).or_default();
        u.xyz.extend_from_slice(&xyz);
        u.y.push(class as u32);
        if counts_toward_threshold {
            u.counted += 1;
        }
        Ok(())
    })?;

    let mut report = LoadReport {
        inputs: vec![file.to_string()],
        rows,
        ..Default::default()
    };
    skips.fold_into(&mut report, file);
    if seventh.0 > 0 {
        report.note(format!(
            "{} records had a non-empty 7th field, ignored as the reference does (first at {file}: line {})",
            seventh.0, seventh.1
        ));
    }

    // Keep users as the reference does: count - 1 > threshold (its counter starts at zero).
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (&id, u) in &users {
        if u.y.is_empty() {
            dropped.push(format!("{id} (0 usable records)"));
        } else if all_users || u.counted.saturating_sub(1) > w.user_threshold {
            kept.push(id);
        } else {
            dropped.push(format!("{id} ({} records)", u.counted));
        }
    }
    if all_users {
        report.note(format!("kept all {} users (threshold off)", kept.len()));
    } else {
        report.note(format!(
            "kept {} of {} users: those with more than {} records (the reference's rule: records - 1 > {})",
            kept.len(),
            users.len(),
            w.user_threshold + 1,
            w.user_threshold
        ));
        if !dropped.is_empty() {
            report.note(format!("dropped users: {}", dropped.join(", ")));
        }
    }
    let mapping: Vec<String> = kept
        .iter()
        .enumerate()
        .map(|(i, id)| format!("{i}={id}"))
        .collect();
    report.note(format!("domain = WISDM user: {}", mapping.join(" ")));

    let mut domains = Vec::new();
    let mut too_short = Vec::new();
    for (i, id) in kept.iter().enumerate() {
        let u = &users[id];
        let mut sink = WindowSink::default();
        cut(&u.xyz, &u.y, 3, spec, &mut sink);
        if sink.y.is_empty() {
            too_short.push(format!("{i} (user {id}, {} records)", u.y.len()));
            continue;
        }
        domains.push(DomainData {
            id: i as u32,
            x: shrunk(sink.x),
            y: sink.y,
            valid_lengths: None,
        });
    }
    if !too_short.is_empty() {
        report.note(format!(
            "domains too short for one window (left out): {}",
            too_short.join(", ")
        ));
    }
    if domains.is_empty() {
        return Err(DataError::NoWindows {
            name: card.name.clone(),
            reason: format!(
                "no user of {file} has enough records (keep users with --wisdm-all-users)"
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
