//! UCI HAPT raw-signal loader: `RawData/acc_expXX_userYY.txt`, `gyro_expXX_userYY.txt` (plain or
//! `.gz`) and `labels.txt`, from the extracted folder or the published zip.
//!
//! Six channels (acc x, y, z in g, gyro x, y, z in rad/s) at 50 Hz. Each line of `labels.txt` is a
//! segment `exp user activity start end` (sample indices, `end` inclusive). Windows of 128 samples
//! start every 64 samples inside each segment of a chosen activity and never cross a segment's ends;
//! a window's label is its segment's activity. Activities 1–6 are used by default (classes 0–5);
//! `transitions` adds the postural transitions 7–12. Domains are users 1..30.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::finish::{self, Shape};
use super::{DataOptions, Format};
use crate::data::card::{Card, HaptCard};
use crate::data::parse::{for_each_line, parse_f32, parse_i64, run_parallel, show};
use crate::data::report::LoadReport;
use crate::data::source::Tree;
use crate::data::window::{cut, WindowSink, WindowSpec};
use crate::data::{DataError, Dataset};

/// The UCI HAPT raw-signal format: experiments' acc and gyro files cut inside labelled segments.
pub struct Hapt;

impl Format for Hapt {
    fn inputs(&self, card: &Card, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        inputs(dir, card)
    }

    fn parse(
        &self,
        card: &Card,
        dir: &Path,
        opts: &DataOptions,
    ) -> Result<(Dataset, LoadReport), DataError> {
        load(dir, card, opts.hapt_transitions)
    }

    fn params(&self, opts: &DataOptions) -> String {
        format!("transitions={}", opts.hapt_transitions)
    }
}

fn hapt_card(card: &Card) -> Result<&HaptCard, DataError> {
    finish::table(card, card.hapt.as_ref(), "hapt")
}

/// One experiment's signal files (relative to the tree root).
#[derive(Debug, Clone)]
struct Experiment {
    exp: u32,
    user: u32,
    acc: String,
    gyro: String,
}

/// The tree, the path prefix of the raw folder inside it, its experiments and the labels file.
struct Layout {
    tree: Tree,
    labels: String,
    experiments: BTreeMap<u32, Experiment>,
}

/// `acc_exp01_user01.txt[.gz]` → ("acc", 1, 1).
fn parse_signal_name(name: &str) -> Option<(&str, u32, u32)> {
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let stem = stem.strip_suffix(".txt")?;
    let (kind, rest) = stem.split_once("_exp")?;
    let (exp, user) = rest.split_once("_user")?;
    Some((kind, exp.parse().ok()?, user.parse().ok()?))
}

/// Finds the raw folder in `dir`: `dir/RawData`, `dir` itself, one level down, or a zip holding it.
fn find(dir: &Path, card: &Card) -> Result<Layout, DataError> {
    let h = hapt_card(card)?;
    let tree = if dir.is_file() {
        Tree::Zip(dir.to_path_buf())
    } else if dir.is_dir() {
        match card.source.as_ref().map(|s| dir.join(&s.archive)) {
            Some(zip) if zip.is_file() && !has_labels(dir, h) => Tree::Zip(zip),
            _ => Tree::Dir(dir.to_path_buf()),
        }
    } else {
        return Err(crate::data::source::not_found(
            card,
            dir,
            &format!("{}/{}", h.raw_dir, h.labels),
        ));
    };
    let files = tree.files()?;
    // The labels file closest to the root decides where the raw folder is.
    let labels = files
        .iter()
        .filter(|f| f.rsplit('/').next() == Some(h.labels.as_str()))
        .min_by_key(|f| f.matches('/').count())
        .cloned()
        .ok_or_else(|| {
            crate::data::source::not_found(
                card,
                dir,
                &format!("{}/{} and its signal files", h.raw_dir, h.labels),
            )
        })?;
    let prefix = labels.rsplit_once('/').map_or("", |(p, _)| p);
    let mut experiments: BTreeMap<u32, Experiment> = BTreeMap::new();
    let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
    for f in &files {
        let (parent, name) = f.rsplit_once('/').unwrap_or(("", f));
        if parent != prefix {
            continue;
        }
        let Some((kind, exp, user)) = parse_signal_name(name) else {
            continue;
        };
        if kind != "acc" && kind != "gyro" {
            continue;
        }
        if let Some(other) = seen.insert((kind.to_string(), exp), f.clone()) {
            return Err(DataError::BadFile {
                file: tree.display(f),
                reason: format!("experiment {exp} has two {kind} files (also {other})"),
            });
        }
        let e = experiments.entry(exp).or_insert_with(|| Experiment {
            exp,
            user,
            acc: String::new(),
            gyro: String::new(),
        });
        if e.user != user {
            return Err(DataError::BadFile {
                file: tree.display(f),
                reason: format!("experiment {exp} is user {} in another file name", e.user),
            });
        }
        if kind == "acc" {
            e.acc = f.clone();
        } else {
            e.gyro = f.clone();
        }
    }
    for e in experiments.values() {
        if e.acc.is_empty() || e.gyro.is_empty() {
            let have = if e.acc.is_empty() { &e.gyro } else { &e.acc };
            return Err(DataError::BadFile {
                file: tree.display(have),
                reason: format!(
                    "experiment {} has no matching {} file",
                    e.exp,
                    if e.acc.is_empty() { "acc" } else { "gyro" }
                ),
            });
        }
    }
    Ok(Layout {
        tree,
        labels,
        experiments,
    })
}

fn has_labels(dir: &Path, h: &HaptCard) -> bool {
    dir.join(&h.raw_dir).join(&h.labels).is_file() || dir.join(&h.labels).is_file()
}

/// Files whose contents determine the dataset (for the cache key).
pub fn inputs(dir: &Path, card: &Card) -> Result<Vec<PathBuf>, DataError> {
    let layout = find(dir, card)?;
    let mut rels = vec![layout.labels.clone()];
    for e in layout.experiments.values() {
        rels.push(e.acc.clone());
        rels.push(e.gyro.clone());
    }
    Ok(layout.tree.disk_files(&rels))
}

/// One labelled segment.
pub(crate) struct Segment {
    line: usize,
    exp: u32,
    user: u32,
    activity: u32,
    start: u64,
    end: u64,
}

/// Parses `labels.txt`.
pub(crate) fn parse_labels(bytes: &[u8], file: &str) -> Result<Vec<Segment>, DataError> {
    let mut out = Vec::new();
    for_each_line(bytes, file, |line, text| {
        if text.trim_ascii().is_empty() {
            return Err(DataError::BadLine {
                file: file.to_string(),
                line,
                reason: "blank line; expected `exp user activity start end`".into(),
            });
        }
        let toks: Vec<&[u8]> = text
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if toks.len() != 5 {
            return Err(DataError::BadLine {
                file: file.to_string(),
                line,
                reason: format!(
                    "expected 5 integers `exp user activity start end`, found {} values: {:?}",
                    toks.len(),
                    show(text)
                ),
            });
        }
        let mut v = [0i64; 5];
        for (k, t) in toks.iter().enumerate() {
            v[k] = parse_i64(t)
                .filter(|&x| x >= 0)
                .ok_or_else(|| DataError::BadLine {
                    file: file.to_string(),
                    line,
                    reason: format!("value {:?} is not a non-negative integer", show(t)),
                })?;
        }
        if v[4] < v[3] {
            return Err(DataError::BadLine {
                file: file.to_string(),
                line,
                reason: format!("segment end {} is before its start {}", v[4], v[3]),
            });
        }
        out.push(Segment {
            line,
            exp: v[0] as u32,
            user: v[1] as u32,
            activity: v[2] as u32,
            start: v[3] as u64,
            end: v[4] as u64,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Parses a signal file: 3 numbers per line; returns interleaved values.
pub(crate) fn parse_signal(bytes: &[u8], file: &str) -> Result<Vec<f32>, DataError> {
    let mut out = Vec::with_capacity(bytes.len() / 16);
    for_each_line(bytes, file, |line, text| {
        let mut k = 0;
        for tok in text
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            if k == 3 {
                return Err(DataError::BadLine {
                    file: file.to_string(),
                    line,
                    reason: format!("expected 3 values (x y z), found more: {:?}", show(text)),
                });
            }
            let v = parse_f32(tok)
                .filter(|v| v.is_finite())
                .ok_or_else(|| DataError::BadLine {
                    file: file.to_string(),
                    line,
                    reason: format!("value {:?} is not a finite number", show(tok)),
                })?;
            out.push(v);
            k += 1;
        }
        if k != 3 {
            return Err(DataError::BadLine {
                file: file.to_string(),
                line,
                reason: format!("expected 3 values (x y z), found {k}"),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// Loads UCI HAPT from `dir`; `transitions` adds activities 7–12.
pub fn load(
    dir: &Path,
    card: &Card,
    transitions: bool,
) -> Result<(Dataset, LoadReport), DataError> {
    let h = hapt_card(card)?;
    let spec = finish::window_spec(card)?;
    let layout = find(dir, card)?;
    let tree = &layout.tree;
    let n_classes = if transitions {
        card.classes.len()
    } else {
        h.default_classes
    };
    let labels_name = tree.display(&layout.labels);
    let segments = {
        let mut ctx = tree.context()?;
        parse_labels(&tree.read(&mut ctx, &layout.labels)?, &labels_name)?
    };
    let mut report = LoadReport {
        inputs: vec![labels_name.clone()],
        ..Default::default()
    };
    let signals = read_signals(&layout, &mut report)?;
    let cutter = Cutter {
        layout: &layout,
        signals: &signals,
        labels_name: &labels_name,
        spec,
        base: h.label_index_base,
        activities: card.classes.len(),
        n_classes,
    };
    let cuts = cutter.cut_all(&segments)?;
    report.note(format!(
        "{} labelled segments; windows of {} every {} inside segments of activities 1..{}",
        segments.len(),
        spec.length,
        spec.stride,
        n_classes
    ));
    if cuts.excluded > 0 {
        report.note(format!(
            "{} segments of postural transitions (activities {}..{}) left out; add them with --hapt-transitions",
            cuts.excluded,
            n_classes + 1,
            card.classes.len()
        ));
    }
    if cuts.short > 0 {
        report.note(format!(
            "{} segments shorter than {} samples gave no window",
            cuts.short, spec.length
        ));
    }
    let unlabelled: Vec<String> = layout
        .experiments
        .keys()
        .filter(|e| !cuts.labelled.contains(e))
        .map(|e| e.to_string())
        .collect();
    if !unlabelled.is_empty() {
        report.note(format!(
            "experiments without labelled segments: {}",
            unlabelled.join(", ")
        ));
    }
    let (domains, _) = finish::domains(cuts.domains);
    let shape = Shape {
        name: card.name.clone(),
        channels: 6,
        length: spec.length,
        class_names: card.classes[..n_classes].to_vec(),
        zscore: card.zscore,
    };
    finish::dataset(shape, domains, report, || {
        format!(
            "no labelled segment in {labels_name} is {} samples long",
            spec.length
        )
    })
}

/// Reads and parses every experiment's acc and gyro files in parallel; returns each experiment's
/// six channels, interleaved per sample (acc x y z, gyro x y z), and counts them in `report`.
fn read_signals(
    layout: &Layout,
    report: &mut LoadReport,
) -> Result<BTreeMap<u32, Vec<f32>>, DataError> {
    let tree = &layout.tree;
    let exps: Vec<&Experiment> = layout.experiments.values().collect();
    let jobs: Vec<(usize, bool)> = (0..exps.len())
        .flat_map(|i| [(i, true), (i, false)])
        .collect();
    let parsed = run_parallel(
        &jobs,
        || tree.context(),
        |ctx, &(i, acc)| -> Result<Vec<f32>, DataError> {
            let ctx = ctx.as_mut().map_err(|e| DataError::Spec {
                name: "ucihapt".into(),
                reason: e.to_string(),
            })?;
            let rel = if acc { &exps[i].acc } else { &exps[i].gyro };
            parse_signal(&tree.read(ctx, rel)?, &tree.display(rel))
        },
    );
    let parsed: Vec<Vec<f32>> = parsed.into_iter().collect::<Result<_, _>>()?;
    let mut signals: BTreeMap<u32, Vec<f32>> = BTreeMap::new();
    for (i, e) in exps.iter().enumerate() {
        let (acc, gyro) = (&parsed[2 * i], &parsed[2 * i + 1]);
        if acc.len() != gyro.len() {
            return Err(DataError::LineCountMismatch {
                file: tree.display(&e.gyro),
                lines: gyro.len() / 3,
                other_file: tree.display(&e.acc),
                other_lines: acc.len() / 3,
            });
        }
        let mut six = Vec::with_capacity(acc.len() * 2);
        for (a, g) in acc.chunks_exact(3).zip(gyro.chunks_exact(3)) {
            six.extend_from_slice(a);
            six.extend_from_slice(g);
        }
        report.rows += (acc.len() / 3) as u64;
        report.inputs.push(tree.display(&e.acc));
        report.inputs.push(tree.display(&e.gyro));
        signals.insert(e.exp, six);
    }
    Ok(signals)
}

/// Cuts the labelled segments of the experiments' signals into windows.
struct Cutter<'a> {
    layout: &'a Layout,
    /// Each experiment's six interleaved channels.
    signals: &'a BTreeMap<u32, Vec<f32>>,
    /// Names `labels.txt` in messages.
    labels_name: &'a str,
    spec: WindowSpec,
    /// The index `labels.txt` gives a file's first sample.
    base: u64,
    /// Activities the labels may name (`1..=activities`).
    activities: usize,
    /// Activities windowed (`1..=n_classes`); segments of the others are left out.
    n_classes: usize,
}

/// What [`Cutter::cut_all`] made.
struct Cuts {
    /// Windows per user.
    domains: BTreeMap<u32, WindowSink>,
    /// Segments of activities left out.
    excluded: usize,
    /// Segments too short for a window.
    short: usize,
    /// Experiments with at least one segment.
    labelled: BTreeSet<u32>,
}

impl Cutter<'_> {
    /// Checks every segment against the experiments and cuts those of the chosen activities.
    fn cut_all(&self, segments: &[Segment]) -> Result<Cuts, DataError> {
        let mut cuts = Cuts {
            domains: BTreeMap::new(),
            excluded: 0,
            short: 0,
            labelled: BTreeSet::new(),
        };
        for s in segments {
            let six = self.check(s)?;
            cuts.labelled.insert(s.exp);
            if s.activity as usize > self.n_classes {
                cuts.excluded += 1;
                continue;
            }
            let (a, b) = (
                (s.start - self.base) as usize,
                (s.end - self.base) as usize + 1,
            );
            let labels = vec![s.activity - 1; b - a];
            let sink = cuts.domains.entry(s.user).or_default();
            let before = sink.y.len();
            cut(&six[a * 6..b * 6], &labels, 6, self.spec, sink);
            if sink.y.len() == before {
                cuts.short += 1;
            }
        }
        Ok(cuts)
    }

    /// Checks segment `s` names a known experiment of its user, a known activity and samples inside
    /// the experiment; returns the experiment's signals.
    fn check(&self, s: &Segment) -> Result<&[f32], DataError> {
        let bad = |reason: String| DataError::BadLine {
            file: self.labels_name.to_string(),
            line: s.line,
            reason,
        };
        let Some(e) = self.layout.experiments.get(&s.exp) else {
            return Err(bad(format!("experiment {} has no signal files", s.exp)));
        };
        if e.user != s.user {
            return Err(bad(format!(
                "experiment {} belongs to user {} (file names), not {}",
                s.exp, e.user, s.user
            )));
        }
        if s.activity == 0 || s.activity as usize > self.activities {
            return Err(bad(format!(
                "activity {} outside 1..{}",
                s.activity, self.activities
            )));
        }
        let six = &self.signals[&s.exp];
        let n = (six.len() / 6) as u64;
        let base = self.base;
        if s.start < base || s.end - base >= n {
            return Err(bad(format!(
                "segment {}..{} lies outside experiment {}'s {} samples (first index {base})",
                s.start, s.end, s.exp, n
            )));
        }
        Ok(six)
    }
}
