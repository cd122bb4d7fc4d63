//! The user's own long-format table (CSV, CSV.gz or Parquet, read with polars): one row per sample,
//! with a domain column, a label column and channel columns, optionally a time column (rows are
//! ordered by it within each recording) and a group column (a recording id: windows never cross
//! groups). Each recording is cut into windows of `length` samples every `stride` samples, labelled by
//! the last sample or the majority.
//!
//! Domain ids: an integer column gives its values; a text column is sorted and numbered from 0 (the
//! mapping is in the report). Classes: the column's distinct values, sorted (numbers numerically).
//! A missing column, a null, a non-finite value or a non-numeric channel is an error naming the column
//! and the row.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::finish::{self, Shape};
use super::{DataOptions, Format};
use crate::data::card::Card;
use crate::data::parse::read_maybe_gz;
use crate::data::report::LoadReport;
use crate::data::window::{cut, LabelRule, WindowSink, WindowSpec};
use crate::data::{DataError, Dataset};

/// The user's long-format table; its columns and windows come from [`TabularOptions`].
pub struct Tabular;

impl Format for Tabular {
    fn inputs(&self, _card: &Card, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        inputs(dir)
    }

    fn parse(
        &self,
        _card: &Card,
        dir: &Path,
        opts: &DataOptions,
    ) -> Result<(Dataset, LoadReport), DataError> {
        match &opts.tabular {
            Some(t) => load(dir, t),
            None => Err(DataError::Options(
                "--dataset tabular needs its columns".into(),
            )),
        }
    }

    fn params(&self, opts: &DataOptions) -> String {
        serde_json::to_string(&opts.tabular).unwrap_or_default()
    }

    fn check(&self, opts: &DataOptions) -> Result<(), DataError> {
        match &opts.tabular {
            None => Err(DataError::Options(
                "--dataset tabular needs --domain-col, --label-col and --channels (and --data-dir FILE)"
                    .into(),
            )),
            Some(t) => t.check(),
        }
    }

    fn describe(&self, card: &Card, opts: &DataOptions) -> (Vec<String>, String) {
        match &opts.tabular {
            Some(t) => (
                t.channels.clone(),
                t.sample_rate_hz.map_or_else(
                    || "unknown (set --sample-rate)".into(),
                    |hz| format!("{hz} Hz"),
                ),
            ),
            None => (card.channels.clone(), card.sample_rate_text()),
        }
    }
}

/// Which columns hold what, and how to window: everything needed to rebuild the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularOptions {
    /// Column holding the domain (participant).
    pub domain_col: String,
    /// Column holding the class label.
    pub label_col: String,
    /// Channel columns, in window order.
    pub channels: Vec<String>,
    /// Column to order rows by within each recording (file order when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_col: Option<String>,
    /// Column holding a recording id; windows never cross recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_col: Option<String>,
    /// Window length, stride and label rule.
    pub window: WindowSpec,
    /// Sampling rate, for information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate_hz: Option<f64>,
    /// Z-score per domain per channel on the domain's train split.
    #[serde(default = "yes")]
    pub zscore: bool,
}

fn yes() -> bool {
    true
}

impl TabularOptions {
    /// Checks the options before reading anything.
    pub fn check(&self) -> Result<(), DataError> {
        self.window.check()?;
        if self.channels.is_empty() {
            return Err(DataError::Options(
                "tabular data needs at least one channel column (--channels a,b,c)".into(),
            ));
        }
        let mut names: Vec<&str> = vec![&self.domain_col, &self.label_col];
        names.extend(self.channels.iter().map(String::as_str));
        names.extend(self.time_col.as_deref());
        names.extend(self.group_col.as_deref());
        for (i, a) in names.iter().enumerate() {
            if a.is_empty() {
                return Err(DataError::Options("empty column name".into()));
            }
            if names[..i].contains(a) {
                return Err(DataError::Options(format!(
                    "column {a:?} is named twice among --domain-col, --label-col, --channels, --time-col, --group-col"
                )));
            }
        }
        if let Some(hz) = self.sample_rate_hz {
            if !(hz.is_finite() && hz > 0.0) {
                return Err(DataError::Options(format!(
                    "--sample-rate must be a positive number (got {hz})"
                )));
            }
        }
        Ok(())
    }
}

/// File extensions read as tables.
const EXTENSIONS: &[&str] = &[".csv", ".csv.gz", ".parquet", ".pq", ".tsv", ".tsv.gz"];

/// The table file: `path` itself, or the one table file in folder `path`.
pub fn find(path: &Path) -> Result<PathBuf, DataError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let not_found = |hint: String| DataError::NotFound {
        title: "tabular".into(),
        dir: path.to_path_buf(),
        hint,
    };
    if !path.is_dir() {
        return Err(not_found(
            "pass the table file (CSV, CSV.gz or Parquet), or a folder holding one, with --data-dir".into(),
        ));
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
        let p = entry.map_err(|e| DataError::io(path, e))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if p.is_file() && EXTENSIONS.iter().any(|e| name.ends_with(e)) {
            found.push(p);
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(not_found(
            "no .csv, .csv.gz or .parquet file; pass the table file with --data-dir".into(),
        )),
        _ => Err(not_found(format!(
            "several tables ({}); pass one file with --data-dir",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Files whose contents determine the dataset (for the cache key).
pub fn inputs(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    Ok(vec![find(path)?])
}

/// Reads the table at `file` into a DataFrame (channels and time as floats).
fn read_frame(file: &Path, opts: &TabularOptions) -> Result<DataFrame, DataError> {
    let name = file.display().to_string();
    let lower = name.to_ascii_lowercase();
    let polars_err = |e: PolarsError| DataError::BadFile {
        file: name.clone(),
        reason: e.to_string(),
    };
    if lower.ends_with(".parquet") || lower.ends_with(".pq") {
        let f = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
        return ParquetReader::new(f).finish().map_err(polars_err);
    }
    let bytes = read_maybe_gz(file)?;
    let sep = if lower.ends_with(".tsv") || lower.ends_with(".tsv.gz") {
        b'\t'
    } else {
        b','
    };
    parse_csv(&bytes, &name, sep, opts)
}

/// Parses CSV (or TSV, `sep`) `bytes` into a DataFrame (channels and time as floats); `name`
/// names the file in messages.
pub(crate) fn parse_csv(
    bytes: &[u8],
    name: &str,
    sep: u8,
    opts: &TabularOptions,
) -> Result<DataFrame, DataError> {
    let mut float_cols: Vec<&String> = opts.channels.iter().collect();
    float_cols.extend(opts.time_col.as_ref());
    let overwrite: Schema = float_cols
        .into_iter()
        .map(|c| Field::new(c.as_str().into(), DataType::Float64))
        .collect();
    let float_names: Vec<String> = overwrite.iter_names().map(|n| n.to_string()).collect();
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(10_000))
        .with_schema_overwrite(Some(Arc::new(overwrite)))
        .map_parse_options(|p| p.with_separator(sep))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| DataError::BadFile {
            file: name.to_string(),
            // polars names the value but not the line: find it, else keep its first line.
            reason: first_bad_line(bytes, sep, &float_names).unwrap_or_else(|| {
                // polars quotes the raw value: control characters in it (a `\r`) are escaped
                // so that the message stays one line.
                crate::data::parse::one_line(e.to_string().lines().next().unwrap_or("").trim())
            }),
        })
}

/// The first line of a CSV whose field count differs from the header's, or whose numeric
/// column holds a non-empty value that is not a number, described for an error message.
fn first_bad_line(bytes: &[u8], sep: u8, float_cols: &[String]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(sep as char).map(str::trim).collect();
    let numeric: Vec<(usize, &str)> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| float_cols.iter().any(|c| c == *h))
        .map(|(i, h)| (i, *h))
        .collect();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(sep as char).collect();
        let n = i + 2;
        if fields.len() != header.len() {
            return Some(format!(
                "line {n}: {} fields, but the header has {}",
                fields.len(),
                header.len()
            ));
        }
        for &(c, col) in &numeric {
            let v = fields[c].trim();
            if !v.is_empty() && v.parse::<f64>().is_err() {
                return Some(format!(
                    "line {n}: column {col}: value {v:?} is not a number"
                ));
            }
        }
    }
    None
}

/// A row for messages: `row N (line N+1)` for CSV files, `row N` otherwise (1-based data rows).
fn row_name(csv: bool, i: usize) -> String {
    if csv {
        format!("row {} (line {})", i + 1, i + 2)
    } else {
        format!("row {}", i + 1)
    }
}

/// A column by name, or an error listing the columns there are.
fn column<'a>(df: &'a DataFrame, name: &str, file: &str) -> Result<&'a Series, DataError> {
    df.column(name)
        .map(|c| c.as_materialized_series())
        .map_err(|_| DataError::BadFile {
            file: file.to_string(),
            reason: format!(
                "no column {name:?}; the columns are {}",
                df.get_column_names()
                    .iter()
                    .map(|n| format!("{:?}", n.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Integer or text keys of a column, in row order: (key index per row, distinct keys in sorted order).
enum Keys {
    /// Integer values.
    Int(Vec<i64>),
    /// Text values.
    Text(Vec<String>),
}

/// Reads a key column (domain, label, group): integers or text; nulls are errors.
fn keys(s: &Series, what: &str, file: &str, csv: bool) -> Result<Keys, DataError> {
    let null_err = |i: usize| DataError::BadFile {
        file: file.to_string(),
        reason: format!(
            "{what} column {:?} is empty at {}",
            s.name().as_str(),
            row_name(csv, i)
        ),
    };
    if s.dtype().is_integer() || s.dtype() == &DataType::Boolean {
        let c = s.cast(&DataType::Int64).map_err(|e| DataError::BadFile {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        let ca = c.i64().map_err(|e| DataError::BadFile {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(ca.len());
        for (i, v) in ca.iter().enumerate() {
            out.push(v.ok_or_else(|| null_err(i))?);
        }
        return Ok(Keys::Int(out));
    }
    if s.dtype() == &DataType::String {
        let ca = s.str().map_err(|e| DataError::BadFile {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(ca.len());
        for (i, v) in ca.iter().enumerate() {
            out.push(v.ok_or_else(|| null_err(i))?.to_string());
        }
        return Ok(Keys::Text(out));
    }
    Err(DataError::BadFile {
        file: file.to_string(),
        reason: format!(
            "{what} column {:?} holds {}; it must hold integers or text",
            s.name().as_str(),
            s.dtype()
        ),
    })
}

/// Float values of a column; nulls and non-finite values are errors.
fn floats(s: &Series, what: &str, file: &str, csv: bool) -> Result<Vec<f64>, DataError> {
    if !(s.dtype().is_primitive_numeric()) {
        return Err(DataError::BadFile {
            file: file.to_string(),
            reason: format!(
                "{what} column {:?} holds {}, not numbers",
                s.name().as_str(),
                s.dtype()
            ),
        });
    }
    let c = s.cast(&DataType::Float64).map_err(|e| DataError::BadFile {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    let ca = c.f64().map_err(|e| DataError::BadFile {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(ca.len());
    for (i, v) in ca.iter().enumerate() {
        match v {
            Some(v) if v.is_finite() => out.push(v),
            Some(v) => {
                return Err(DataError::BadFile {
                    file: file.to_string(),
                    reason: format!(
                        "{what} column {:?} has the non-finite value {v} at {}",
                        s.name().as_str(),
                        row_name(csv, i)
                    ),
                })
            }
            None => {
                return Err(DataError::BadFile {
                    file: file.to_string(),
                    reason: format!(
                        "{what} column {:?} is empty or not a number at {}",
                        s.name().as_str(),
                        row_name(csv, i)
                    ),
                })
            }
        }
    }
    Ok(out)
}

/// Maps keys to dense ids in sorted key order; returns (id per row, names in id order).
fn dense(keys: &Keys) -> (Vec<u32>, Vec<String>) {
    match keys {
        Keys::Int(v) => {
            let mut distinct: Vec<i64> = v.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let index: HashMap<i64, u32> = distinct
                .iter()
                .enumerate()
                .map(|(i, &k)| (k, i as u32))
                .collect();
            (
                v.iter().map(|k| index[k]).collect(),
                distinct.iter().map(|k| k.to_string()).collect(),
            )
        }
        Keys::Text(v) => {
            let mut distinct: Vec<&String> = v.iter().collect();
            distinct.sort_unstable();
            distinct.dedup();
            let index: HashMap<&String, u32> = distinct
                .iter()
                .enumerate()
                .map(|(i, &k)| (k, i as u32))
                .collect();
            (
                v.iter().map(|k| index[k]).collect(),
                distinct.iter().map(|k| k.to_string()).collect(),
            )
        }
    }
}

/// Loads the table at `path` (a file, or a folder holding one) as `opts` says.
pub fn load(path: &Path, opts: &TabularOptions) -> Result<(Dataset, LoadReport), DataError> {
    opts.check()?;
    let file_path = find(path)?;
    let file = file_path.display().to_string();
    let lower = file.to_ascii_lowercase();
    let csv = !(lower.ends_with(".parquet") || lower.ends_with(".pq"));
    let df = read_frame(&file_path, opts)?;
    load_frame(&df, &file, csv, opts)
}

/// Windows a table read from `file` (`csv`: row numbers are CSV lines) as `opts` says.
pub(crate) fn load_frame(
    df: &DataFrame,
    file: &str,
    csv: bool,
    opts: &TabularOptions,
) -> Result<(Dataset, LoadReport), DataError> {
    let n = df.height();
    let mut report = LoadReport {
        inputs: vec![file.to_string()],
        rows: n as u64,
        ..Default::default()
    };
    let columns = Columns::read(df, opts, file, csv, &mut report)?;
    let (sinks, recordings, leftover) = columns.cut(n, opts);
    report.note(format!(
        "{} recordings ({}); windows of {} every {}, label = {} sample{}",
        recordings,
        match &opts.group_col {
            Some(g) => format!("domain x {g:?}"),
            None => "one per domain".into(),
        },
        opts.window.length,
        opts.window.stride,
        opts.window.label.as_str(),
        if opts.window.label == LabelRule::Majority {
            "s"
        } else {
            ""
        }
    ));
    if leftover > 0 {
        report.note(format!(
            "{leftover} rows lie in no window (recording ends, or gaps when the stride exceeds the length)"
        ));
    }
    let (domains, _) = finish::domains(sinks);
    let shape = Shape {
        name: "tabular".into(),
        channels: opts.channels.len(),
        length: opts.window.length,
        class_names: columns.class_names,
        zscore: opts.zscore,
    };
    finish::dataset(shape, domains, report, || {
        format!("no recording in {file} has {} rows", opts.window.length)
    })
}

/// The table's columns, read and checked: one entry per row in each.
struct Columns {
    /// Domain id.
    domains: Vec<u32>,
    /// Class id.
    labels: Vec<u32>,
    /// Class names in id order.
    class_names: Vec<String>,
    /// Each channel's values.
    channels: Vec<Vec<f64>>,
    /// Time stamps, when there is a time column.
    times: Option<Vec<f64>>,
    /// Recording id, when there is a group column.
    groups: Option<Vec<u32>>,
}

impl Columns {
    /// Reads the columns `opts` names from `df` (`file` names it in messages, `csv` says how rows
    /// are named); the mapping of text domains to ids goes to `report`.
    fn read(
        df: &DataFrame,
        opts: &TabularOptions,
        file: &str,
        csv: bool,
        report: &mut LoadReport,
    ) -> Result<Columns, DataError> {
        let domain_keys = keys(column(df, &opts.domain_col, file)?, "domain", file, csv)?;
        let domains = domain_ids(&domain_keys, file, csv, report)?;
        let (labels, class_names) = dense(&keys(
            column(df, &opts.label_col, file)?,
            "label",
            file,
            csv,
        )?);
        let channels: Vec<Vec<f64>> = opts
            .channels
            .iter()
            .map(|c| floats(column(df, c, file)?, "channel", file, csv))
            .collect::<Result<_, _>>()?;
        let times = match &opts.time_col {
            Some(t) => Some(floats(column(df, t, file)?, "time", file, csv)?),
            None => None,
        };
        let groups: Option<Vec<u32>> = match &opts.group_col {
            Some(g) => Some(dense(&keys(column(df, g, file)?, "group", file, csv)?).0),
            None => None,
        };
        Ok(Columns {
            domains,
            labels,
            class_names,
            channels,
            times,
            groups,
        })
    }

    /// Cuts each recording, (domain, group) in order of first appearance with its rows in file (or
    /// time) order, into windows; returns the windows per domain, the number of recordings and the
    /// rows that lie in no window.
    fn cut(&self, n: usize, opts: &TabularOptions) -> (BTreeMap<u32, WindowSink>, usize, usize) {
        let mut order: Vec<(u32, u32)> = Vec::new();
        let mut recordings: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
        for i in 0..n {
            let key = (self.domains[i], self.groups.as_ref().map_or(0, |g| g[i]));
            recordings
                .entry(key)
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push(i);
        }
        let c = opts.channels.len();
        let mut sinks: BTreeMap<u32, WindowSink> = BTreeMap::new();
        let mut leftover = 0usize;
        let mut samples = Vec::new();
        let mut ys = Vec::new();
        for key in &order {
            let mut rows = recordings.remove(key).unwrap_or_default();
            if let Some(t) = &self.times {
                rows.sort_by(|&a, &b| t[a].total_cmp(&t[b]));
            }
            samples.clear();
            ys.clear();
            for &i in &rows {
                samples.extend(self.channels.iter().map(|ch| ch[i] as f32));
                ys.push(self.labels[i]);
            }
            let sink = sinks.entry(key.0).or_default();
            let before = sink.y.len();
            cut(&samples, &ys, c, opts.window, sink);
            let made = sink.y.len() - before;
            let covered = if made == 0 {
                0
            } else {
                (made - 1) * opts.window.stride + opts.window.length
            };
            leftover += rows.len().saturating_sub(covered);
        }
        (sinks, order.len(), leftover)
    }
}

/// Domain ids per row: integer ids as given, text sorted and numbered (the mapping goes to `report`).
fn domain_ids(
    keys: &Keys,
    file: &str,
    csv: bool,
    report: &mut LoadReport,
) -> Result<Vec<u32>, DataError> {
    match keys {
        Keys::Int(v) => {
            let mut ids = Vec::with_capacity(v.len());
            for (i, &k) in v.iter().enumerate() {
                ids.push(u32::try_from(k).map_err(|_| DataError::BadFile {
                    file: file.to_string(),
                    reason: format!(
                        "domain {k} at {} is not a non-negative 32-bit id",
                        row_name(csv, i)
                    ),
                })?);
            }
            Ok(ids)
        }
        Keys::Text(_) => {
            let (ids, names) = dense(keys);
            let mapping: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{i}={n}"))
                .collect();
            report.note(format!(
                "domain ids (sorted text values): {}",
                mapping.join(" ")
            ));
            Ok(ids)
        }
    }
}
