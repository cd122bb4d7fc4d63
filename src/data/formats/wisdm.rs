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

use super::finish::{self, Shape};
use super::{DataOptions, Format};
use crate::data::card::{Card, WisdmCard};
use crate::data::parse::{for_each_line, parse_f32, parse_i64, show, split_fields};
use crate::data::report::{LoadReport, SkipCounter};
use crate::data::source::{locate_member, Input};
use crate::data::window::{cut, WindowSink};
use crate::data::{DataError, Dataset};

/// The WISDM raw-records format (AR v1.1 and AT v2.0, as their cards say).
pub struct Wisdm;

impl Format for Wisdm {
    fn inputs(&self, card: &Card, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        inputs(dir, card)
    }

    fn parse(
        &self,
        card: &Card,
        dir: &Path,
        opts: &DataOptions,
    ) -> Result<(Dataset, LoadReport), DataError> {
        load(dir, card, opts.wisdm_all_users)
    }

    fn params(&self, opts: &DataOptions) -> String {
        format!("all_users={}", opts.wisdm_all_users)
    }
}

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
    finish::table(card, card.wisdm.as_ref(), "wisdm")
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
    let spec = finish::window_spec(card)?;
    let mut records = Records::new(card, file);
    for_each_line(reader, file, |line, raw| records.line(line, raw))?;

    let mut report = LoadReport {
        inputs: vec![file.to_string()],
        rows: records.rows,
        ..Default::default()
    };
    records.skips.fold_into(&mut report, file);
    let (count, first) = records.seventh;
    if count > 0 {
        report.note(format!(
            "{count} records had a non-empty 7th field, ignored as the reference does (first at {file}: line {first})"
        ));
    }
    let users = records.users;
    let kept = keep_users(&users, w, all_users, &mut report);

    let sinks = kept.iter().enumerate().map(|(i, id)| {
        let u = &users[id];
        let mut sink = WindowSink::default();
        cut(&u.xyz, &u.y, 3, spec, &mut sink);
        (i as u32, sink)
    });
    let (domains, too_short) = finish::domains(sinks);
    if !too_short.is_empty() {
        let too_short: Vec<String> = too_short
            .into_iter()
            .map(|i| {
                let id = kept[i as usize];
                format!("{i} (user {id}, {} records)", users[&id].y.len())
            })
            .collect();
        report.note(format!(
            "domains too short for one window (left out): {}",
            too_short.join(", ")
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
        format!("no user of {file} has enough records (keep users with --wisdm-all-users)")
    })
}

/// The users kept, in increasing id (domain `i` is the `i`-th), as the reference keeps them:
/// records - 1 > threshold (its counter starts at zero), or all of them; says so in `report`.
fn keep_users(
    users: &BTreeMap<i64, UserData>,
    w: &WisdmCard,
    all_users: bool,
    report: &mut LoadReport,
) -> Vec<i64> {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (&id, u) in users {
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
    kept
}

/// The records read so far, per user, and what was counted and skipped.
struct Records<'a> {
    /// Names the file in messages.
    file: &'a str,
    /// Class names as the file spells them.
    classes: Vec<&'a [u8]>,
    class_list: String,
    users: BTreeMap<i64, UserData>,
    skips: SkipCounter,
    /// Records kept.
    rows: u64,
    /// Records with a non-empty 7th field: count, first line.
    seventh: (u64, usize),
    /// The line without its semicolons (reused).
    clean: Vec<u8>,
}

impl<'a> Records<'a> {
    fn new(card: &'a Card, file: &'a str) -> Self {
        Records {
            file,
            classes: card.classes.iter().map(|c| c.as_bytes()).collect(),
            class_list: card.classes.join(", "),
            users: BTreeMap::new(),
            skips: SkipCounter::new(SKIPS),
            rows: 0,
            seventh: (0, 0),
            clean: Vec::with_capacity(256),
        }
    }

    fn bad(&self, line: usize, reason: String) -> DataError {
        DataError::BadLine {
            file: self.file.to_string(),
            line,
            reason,
        }
    }

    /// Reads line `line` (1-based): a record is kept, a malformed line skipped and counted, a bad
    /// value is an error.
    fn line(&mut self, line: usize, raw: &[u8]) -> Result<(), DataError> {
        let text = raw.trim_ascii();
        if text.is_empty() {
            self.skips.add(BLANK, line);
            return Ok(());
        }
        // The reference's threshold count splits the line as is (semicolons kept).
        let mut rf = [&b""[..]; 7];
        let raw_n = split_fields(text, b',', &mut rf);
        let counts_toward_threshold = (raw_n == 6 || raw_n == 7)
            && !rf[3].is_empty()
            && !rf[4].is_empty()
            && !rf[5].is_empty();

        let mut clean = std::mem::take(&mut self.clean);
        clean.clear();
        clean.extend(text.iter().copied().filter(|&b| b != b';'));
        let read = self.fields(line, text, &clean, counts_toward_threshold);
        self.clean = clean;
        read
    }

    /// Reads the fields of line `line` (`text` as read, `clean` without semicolons).
    fn fields(
        &mut self,
        line: usize,
        text: &[u8],
        clean: &[u8],
        counts_toward_threshold: bool,
    ) -> Result<(), DataError> {
        let mut f = [&b""[..]; 7];
        let n = split_fields(clean, b',', &mut f);
        if n < 6 {
            self.skips.add(MISSING, line);
            return Ok(());
        }
        if n > 7 {
            let records = memchr::memchr_iter(b';', text).count();
            self.skips
                .add(if records > 1 { SEVERAL } else { TOO_MANY }, line);
            return Ok(());
        }
        if f[3].trim_ascii().is_empty()
            || f[4].trim_ascii().is_empty()
            || f[5].trim_ascii().is_empty()
        {
            self.skips.add(EMPTY_XYZ, line);
            if counts_toward_threshold {
                if let Some(user) = parse_i64(f[0].trim_ascii()) {
                    self.users.entry(user).or_default().counted += 1;
                }
            }
            return Ok(());
        }
        let user = parse_i64(f[0].trim_ascii())
            .ok_or_else(|| self.bad(line, format!("user id {:?} is not an integer", show(f[0]))))?;
        let activity = f[1].trim_ascii();
        let class = self
            .classes
            .iter()
            .position(|c| *c == activity)
            .ok_or_else(|| {
                self.bad(
                    line,
                    format!(
                        "unknown activity {:?}; expected one of {}",
                        show(f[1]),
                        self.class_list
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
                    return Err(self.bad(
                        line,
                        format!("{name} value {:?} is not a finite number", show(tok)),
                    ))
                }
            };
        }
        if n == 7 && !f[6].trim_ascii().is_empty() {
            if self.seventh.0 == 0 {
                self.seventh.1 = line;
            }
            self.seventh.0 += 1;
        }
        self.rows += 1;
        let u = self.users.entry(user).or_default();
        u.xyz.extend_from_slice(&xyz);
        u.y.push(class as u32);
        if counts_toward_threshold {
            u.counted += 1;
        }
        Ok(())
    }
}
