//! UCI HAR (Inertial Signals) loader: reads the published zip or its extracted folder, strictly, in parallel.
//!
//! Train and test are merged; each subject is one domain (id = subject number) holding its windows in
//! file order, train first. Labels `1..=6` become classes `0..=5`. Channels follow the spec's order:
//! body_acc x,y,z, body_gyro x,y,z, total_acc x,y,z.
//!
//! Its download is its own ([`ensure_ucihar`]): the archive is verified against the detailed member
//! list of `datasets/ucihar.toml` (sizes and CRC-32), and `CODATS_UCIHAR_URL` fetches it from
//! elsewhere (a mirror, or a local server in tests).

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Seek, Write};
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::ZipArchive;

use super::{DataOptions, Format};
use crate::data::card::Card;
use crate::data::download::download_verified;
use crate::data::parse::{parse_f32, run_parallel};
use crate::data::report::LoadReport;
use crate::data::spec::{DatasetSpec, MemberSpec};
use crate::data::{DataError, Dataset, DomainData};

/// The UCI HAR format: windows used as published, train and test merged per subject.
pub struct UciHar;

impl Format for UciHar {
    fn inputs(&self, _card: &Card, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        let spec = DatasetSpec::ucihar()?;
        Ok(match find(dir, &spec)? {
            Source::Archive(p) => vec![p],
            Source::Folder(root) => spec.members().map(|m| member_path(&root, m)).collect(),
        })
    }

    fn parse(
        &self,
        _card: &Card,
        dir: &Path,
        _opts: &DataOptions,
    ) -> Result<(Dataset, LoadReport), DataError> {
        let ds = load(dir)?;
        let mut report = LoadReport {
            rows: ds.n_windows() as u64,
            inputs: vec![dir.display().to_string()],
            ..Default::default()
        };
        report.note("windows used as published (train and test merged per subject)");
        Ok((ds, report))
    }

    fn download(&self, _card: &Card, dir: &Path, progress: bool) -> Result<PathBuf, DataError> {
        ensure_ucihar(dir, false, progress)
    }
}

/// Downloads `url` to `dest`, verifying it against `spec` first; on any error nothing is left at `dest`.
///
/// The body is streamed into a temp file next to `dest` (the folder is created), checked with
/// [`verify_archive`], and renamed into place. `progress` shows a bar on stderr when it is a terminal.
/// An existing file at `dest` is replaced only by a verified download.
pub fn download(
    url: &str,
    dest: &Path,
    spec: &DatasetSpec,
    progress: bool,
) -> Result<(), DataError> {
    download_verified(
        url,
        dest,
        &spec.archive,
        |p| verify_archive(p, spec),
        progress,
    )
}

/// Returns the UCI HAR folder or archive in `dir`, downloading the archive there if neither exists.
///
/// With `offline`, a missing dataset is an error saying where to put it. The URL is the spec's, or
/// `$CODATS_UCIHAR_URL` when set.
pub fn ensure_ucihar(dir: &Path, offline: bool, progress: bool) -> Result<PathBuf, DataError> {
    let spec = DatasetSpec::ucihar()?;
    match find(dir, &spec) {
        Ok(source) => Ok(source.path().to_path_buf()),
        Err(missing @ DataError::ArchiveNotFound { .. }) if offline => Err(missing),
        Err(DataError::ArchiveNotFound { path, .. }) => {
            download(&spec.effective_url(), &path, &spec, progress)?;
            Ok(path)
        }
        Err(other) => Err(other),
    }
}

/// Where a dataset's files were found: the extracted folder or the zip archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The extracted root folder (`.../UCI HAR Dataset`).
    Folder(PathBuf),
    /// The zip archive (`.../UCI HAR Dataset.zip`).
    Archive(PathBuf),
}

impl Source {
    /// The folder or archive path.
    pub fn path(&self) -> &Path {
        match self {
            Source::Folder(p) | Source::Archive(p) => p,
        }
    }
}

/// Loads UCI HAR from `dir` (holding `UCI HAR Dataset.zip` and/or the extracted `UCI HAR Dataset/`).
///
/// The extracted folder wins when both are present. `dir` may also be the archive file itself or the
/// extracted folder itself.
pub fn load(dir: &Path) -> Result<Dataset, DataError> {
    let spec = DatasetSpec::ucihar()?;
    load_with_spec(dir, &spec)
}

/// Loads a dataset laid out like UCI HAR, as described by `spec` (see [`load`]).
pub fn load_with_spec(dir: &Path, spec: &DatasetSpec) -> Result<Dataset, DataError> {
    match find(dir, spec)? {
        Source::Folder(root) => load_members(spec, &FolderReader { root: &root }),
        Source::Archive(path) => {
            let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            load_zip_bytes(&path, &bytes, spec)
        }
    }
}

/// Loads the dataset from the bytes of its zip archive (`path` names it in messages).
pub(crate) fn load_zip_bytes(
    path: &Path,
    bytes: &[u8],
    spec: &DatasetSpec,
) -> Result<Dataset, DataError> {
    let archive = open_zip(path, bytes)?;
    load_members(spec, &ZipReader { path, archive })
}

/// Parses a labels (`subjects == false`) or subjects file's bytes into class or subject ids,
/// as the loader does for each split's member.
pub(crate) fn parse_ids(
    spec: &DatasetSpec,
    subjects: bool,
    bytes: &[u8],
    file: &str,
) -> Result<Vec<u32>, DataError> {
    let part = if subjects {
        Part::Subjects
    } else {
        Part::Labels
    };
    Ok(parse_member(spec, part, bytes, file.to_string())?.ids)
}

/// Finds the extracted folder (preferred) or the archive for `spec` in `dir`, or says where it should be.
pub fn find(dir: &Path, spec: &DatasetSpec) -> Result<Source, DataError> {
    if dir.is_file() {
        return Ok(Source::Archive(dir.to_path_buf()));
    }
    let folder = dir.join(&spec.root);
    if folder.is_dir() {
        return Ok(Source::Folder(folder));
    }
    let archive = dir.join(&spec.archive);
    if archive.is_file() {
        return Ok(Source::Archive(archive));
    }
    // `dir` may be the extracted root folder itself.
    if let Some(first) = spec.members().next() {
        if dir.join(&first.path).is_file() {
            return Ok(Source::Folder(dir.to_path_buf()));
        }
    }
    Err(DataError::ArchiveNotFound {
        title: spec.title.clone(),
        name: spec.name.clone(),
        path: archive,
        folder,
        url: spec.effective_url(),
    })
}

/// Checks a downloaded archive: it opens, every member of `spec` is present with its published size, and
/// every member's data matches its CRC-32 (each member is read in full).
pub fn verify_archive(path: &Path, spec: &DatasetSpec) -> Result<(), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let archive = open_zip(path, &bytes)?;
    let members: Vec<(&MemberSpec, String)> =
        spec.members().map(|m| (m, spec.member_name(m))).collect();
    // Presence and declared sizes first: cheap, and the first problem in spec order is reported.
    for (member, name) in &members {
        let index = archive
            .index_for_name(name)
            .ok_or_else(|| DataError::MissingMember {
                archive: path.to_path_buf(),
                member: name.clone(),
            })?;
        let declared = archive
            .by_index_data(index)
            .map_err(|e| zip_error(path, name, e))?
            .size();
        if declared != member.size {
            return Err(DataError::WrongMemberSize {
                archive: path.to_path_buf(),
                member: name.clone(),
                expected: member.size,
                found: declared,
            });
        }
    }
    let results = run_parallel(
        &members,
        || archive.clone(),
        |zip, (member, name)| -> Result<(), DataError> {
            let read = copy_member(zip, path, name, &mut io::sink())?;
            if read != member.size {
                return Err(DataError::WrongMemberSize {
                    archive: path.to_path_buf(),
                    member: name.clone(),
                    expected: member.size,
                    found: read,
                });
            }
            Ok(())
        },
    );
    results.into_iter().collect()
}

/// Opens an in-memory zip, mapping failures to [`DataError::CorruptArchive`].
fn open_zip<'a>(path: &Path, bytes: &'a [u8]) -> Result<ZipArchive<Cursor<&'a [u8]>>, DataError> {
    ZipArchive::new(Cursor::new(bytes)).map_err(|e| DataError::CorruptArchive {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Maps a zip error on member `name` to a [`DataError`].
fn zip_error(path: &Path, name: &str, e: ZipError) -> DataError {
    match e {
        ZipError::FileNotFound => DataError::MissingMember {
            archive: path.to_path_buf(),
            member: name.to_string(),
        },
        ZipError::Io(e) => DataError::io(path, e),
        other => DataError::CorruptMember {
            archive: path.to_path_buf(),
            member: name.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Streams member `name` into `sink`, checking its CRC-32 ourselves; returns the bytes read.
fn copy_member<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    path: &Path,
    name: &str,
    sink: &mut impl Write,
) -> Result<u64, DataError> {
    let mut file = zip.by_name(name).map_err(|e| zip_error(path, name, e))?;
    let expected_crc = file.crc32();
    let declared = file.size();
    let mut hasher = crc32fast::Hasher::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                sink.write_all(&buf[..n])
                    .map_err(|e| DataError::io(path, e))?;
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let found = hasher.clone().finalize();
                // The zip reader checks the CRC when it reaches the end of the data.
                if total == declared && found != expected_crc {
                    return Err(DataError::CrcMismatch {
                        archive: path.to_path_buf(),
                        member: name.to_string(),
                        expected: expected_crc,
                        found,
                    });
                }
                return Err(DataError::CorruptMember {
                    archive: path.to_path_buf(),
                    member: name.to_string(),
                    reason: format!("{e} (after {total} of {declared} bytes)"),
                });
            }
        }
    }
    let found = hasher.finalize();
    if found != expected_crc {
        return Err(DataError::CrcMismatch {
            archive: path.to_path_buf(),
            member: name.to_string(),
            expected: expected_crc,
            found,
        });
    }
    if total != declared {
        return Err(DataError::CorruptMember {
            archive: path.to_path_buf(),
            member: name.to_string(),
            reason: format!("decompressed to {total} bytes, the archive declares {declared}"),
        });
    }
    Ok(total)
}

/// Reads member files' bytes, once per worker thread (`Ctx`), naming them for messages.
trait MemberReader: Sync {
    /// Per-thread state.
    type Ctx;
    /// Creates one thread's state.
    fn context(&self) -> Self::Ctx;
    /// The member's bytes and its display name.
    fn read(
        &self,
        ctx: &mut Self::Ctx,
        spec: &DatasetSpec,
        member: &MemberSpec,
    ) -> Result<(Vec<u8>, String), DataError>;
}

/// Reads members from the extracted folder.
struct FolderReader<'a> {
    root: &'a Path,
}

impl MemberReader for FolderReader<'_> {
    type Ctx = ();
    fn context(&self) -> Self::Ctx {}
    fn read(
        &self,
        _: &mut (),
        _: &DatasetSpec,
        member: &MemberSpec,
    ) -> Result<(Vec<u8>, String), DataError> {
        let path = member_path(self.root, member);
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
        Ok((bytes, path.display().to_string()))
    }
}

/// Where `member` lies under the extracted root folder.
fn member_path(root: &Path, member: &MemberSpec) -> PathBuf {
    member
        .path
        .split('/')
        .fold(root.to_path_buf(), |p, part| p.join(part))
}

/// Reads members from an in-memory zip archive.
struct ZipReader<'a> {
    path: &'a Path,
    archive: ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> MemberReader for ZipReader<'a> {
    type Ctx = ZipArchive<Cursor<&'a [u8]>>;
    fn context(&self) -> Self::Ctx {
        self.archive.clone()
    }
    fn read(
        &self,
        zip: &mut Self::Ctx,
        spec: &DatasetSpec,
        member: &MemberSpec,
    ) -> Result<(Vec<u8>, String), DataError> {
        let name = spec.member_name(member);
        let capacity = zip
            .index_for_name(&name)
            .and_then(|i| zip.by_index_data(i).ok().map(|e| e.size()))
            .unwrap_or(0)
            .min(1 << 30) as usize;
        let mut bytes = Vec::with_capacity(capacity);
        copy_member(zip, self.path, &name, &mut bytes)?;
        Ok((bytes, format!("{name} in {}", self.path.display())))
    }
}

/// What one file of a split holds.
#[derive(Clone, Copy)]
enum Part {
    /// A signal file (jobs list them in channel order).
    Signal,
    /// The labels file.
    Labels,
    /// The subjects file.
    Subjects,
}

/// One parsing job: a file of a split.
struct Job<'s> {
    split: usize,
    part: Part,
    member: &'s MemberSpec,
}

/// A parsed file with its display name.
struct Parsed {
    file: String,
    /// Number of lines (windows).
    lines: usize,
    /// Signal values (`lines * length`), or empty for label/subject files.
    values: Vec<f32>,
    /// Class ids or subject ids, or empty for signal files.
    ids: Vec<u32>,
}

/// Reads and parses every member in parallel, checks consistency, and groups windows by subject.
fn load_members<R: MemberReader>(spec: &DatasetSpec, reader: &R) -> Result<Dataset, DataError> {
    let jobs = jobs(spec);
    let results = run_parallel(
        &jobs,
        || reader.context(),
        |ctx, job| -> Result<Parsed, DataError> {
            let (bytes, file) = reader.read(ctx, spec, job.member)?;
            parse_member(spec, job.part, &bytes, file)
        },
    );
    // First error in job order, so messages do not depend on thread timing.
    let parsed: Vec<Parsed> = results.into_iter().collect::<Result<_, _>>()?;
    let splits = check_splits(spec, &jobs, &parsed)?;
    Ok(Dataset {
        name: spec.name.clone(),
        channels: spec.channels.len(),
        length: spec.length,
        class_names: spec.classes.clone(),
        zscore: spec.zscore,
        domains: group_by_subject(&splits, spec.channels.len(), spec.length),
    })
}

/// Every file to parse: per split, its signals in channel order, then its labels and subjects.
fn jobs(spec: &DatasetSpec) -> Vec<Job<'_>> {
    spec.splits
        .iter()
        .enumerate()
        .flat_map(|(split, s)| {
            let signals = s.signals.iter().map(move |member| Job {
                split,
                part: Part::Signal,
                member,
            });
            signals.chain([
                Job {
                    split,
                    part: Part::Labels,
                    member: &s.labels,
                },
                Job {
                    split,
                    part: Part::Subjects,
                    member: &s.subjects,
                },
            ])
        })
        .collect()
}

/// Parses one member's bytes as `part` says (`file` names it in messages).
fn parse_member(
    spec: &DatasetSpec,
    part: Part,
    bytes: &[u8],
    file: String,
) -> Result<Parsed, DataError> {
    let ids = match part {
        Part::Signal => {
            let values = parse_signals(bytes, &file, spec.length)?;
            return Ok(Parsed {
                lines: values.len() / spec.length,
                file,
                values,
                ids: Vec::new(),
            });
        }
        Part::Labels => classes(spec, &parse_ints(bytes, &file)?, &file)?,
        Part::Subjects => subjects(spec, &parse_ints(bytes, &file)?, &file)?,
    };
    Ok(Parsed {
        lines: ids.len(),
        file,
        values: Vec::new(),
        ids,
    })
}

/// Labels as class ids (`label_base` becomes class 0); a label outside the classes is an error.
fn classes(spec: &DatasetSpec, raw: &[i64], file: &str) -> Result<Vec<u32>, DataError> {
    let base = spec.label_base;
    let n_classes = spec.classes.len() as i64;
    raw.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v < base || v >= base + n_classes {
                Err(DataError::LabelOutOfRange {
                    file: file.to_string(),
                    line: i + 1,
                    value: v,
                    min: base,
                    max: base + n_classes - 1,
                })
            } else {
                Ok((v - base) as u32)
            }
        })
        .collect()
}

/// Subject ids, each checked against the spec's range.
fn subjects(spec: &DatasetSpec, raw: &[i64], file: &str) -> Result<Vec<u32>, DataError> {
    let range = spec.domain_ids;
    raw.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v < i64::from(range.first) || v > i64::from(range.last) {
                Err(DataError::SubjectOutOfRange {
                    file: file.to_string(),
                    line: i + 1,
                    value: v,
                    min: range.first,
                    max: range.last,
                })
            } else {
                Ok(v as u32)
            }
        })
        .collect()
}

/// One split's parsed files, checked to have one line per window each.
struct Split<'p> {
    /// Signal files, in channel order.
    signals: Vec<&'p Parsed>,
    /// Class per window.
    labels: &'p Parsed,
    /// Subject per window.
    subjects: &'p Parsed,
}

/// Regroups the parsed files per split and checks every file of a split has as many lines as its
/// first signal file.
fn check_splits<'p>(
    spec: &DatasetSpec,
    jobs: &[Job],
    parsed: &'p [Parsed],
) -> Result<Vec<Split<'p>>, DataError> {
    type Files<'p> = (Vec<&'p Parsed>, Option<&'p Parsed>, Option<&'p Parsed>);
    let mut splits: Vec<Files> = spec
        .splits
        .iter()
        .map(|_| (Vec::new(), None, None))
        .collect();
    for (job, p) in jobs.iter().zip(parsed) {
        let s = &mut splits[job.split];
        match job.part {
            Part::Signal => s.0.push(p),
            Part::Labels => s.1 = Some(p),
            Part::Subjects => s.2 = Some(p),
        }
    }
    let mut checked = Vec::with_capacity(splits.len());
    for (signals, labels, subjects) in splits {
        let (Some(labels), Some(subjects), Some(first)) = (labels, subjects, signals.first())
        else {
            return Err(DataError::Spec {
                name: spec.name.clone(),
                reason: "a split lacks its signal, label or subject file".into(),
            });
        };
        for other in signals.iter().skip(1).chain([&labels, &subjects]) {
            if other.lines != first.lines {
                return Err(DataError::LineCountMismatch {
                    file: other.file.clone(),
                    lines: other.lines,
                    other_file: first.file.clone(),
                    other_lines: first.lines,
                });
            }
        }
        checked.push(Split {
            signals,
            labels,
            subjects,
        });
    }
    Ok(checked)
}

/// Groups windows by subject (sorted by id), train before test, file order within each.
fn group_by_subject(splits: &[Split], channels: usize, length: usize) -> Vec<DomainData> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for s in splits {
        for &id in &s.subjects.ids {
            *counts.entry(id).or_default() += 1;
        }
    }
    let mut domains: BTreeMap<u32, DomainData> = counts
        .iter()
        .map(|(&id, &n)| {
            (
                id,
                DomainData {
                    id,
                    x: Vec::with_capacity(n * channels * length),
                    y: Vec::with_capacity(n),
                    valid_lengths: None,
                },
            )
        })
        .collect();
    for s in splits {
        for (i, (&subject, &label)) in s.subjects.ids.iter().zip(&s.labels.ids).enumerate() {
            let Some(d) = domains.get_mut(&subject) else {
                continue; // unreachable: every subject was counted above
            };
            d.y.push(label);
            for signal in &s.signals {
                d.x.extend_from_slice(&signal.values[i * length..(i + 1) * length]);
            }
        }
    }
    domains.into_values().collect()
}

/// True for the bytes that separate values on a line.
#[inline]
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

/// Splits `text` into lines (LF or CR LF) and each line into whitespace-separated tokens.
///
/// Calls `token(line, index_on_line, token)` for every token and `end(line, tokens_on_line)` at the end of every line
/// (1-based). A final newline does not start a new line; trailing blanks after it are ignored.
#[inline]
fn scan<E>(
    text: &[u8],
    mut token: impl FnMut(usize, usize, &[u8]) -> Result<(), E>,
    mut end: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<(), E> {
    let n = text.len();
    let mut line = 1;
    let mut found = 0;
    let mut i = 0;
    let mut line_open = false; // a line started (by a token) since the last newline
    while i < n {
        let b = text[i];
        if b == b'\n' {
            end(line, found)?;
            line += 1;
            found = 0;
            line_open = false;
            i += 1;
        } else if is_blank(b) {
            i += 1;
        } else {
            let start = i;
            while i < n && !is_blank(text[i]) && text[i] != b'\n' {
                i += 1;
            }
            line_open = true;
            token(line, found, &text[start..i])?;
            found += 1;
        }
    }
    if line_open {
        end(line, found)?;
    }
    Ok(())
}

/// Parses a signal file: one window of `length` values per line. Returns `lines * length` values.
pub(crate) fn parse_signals(text: &[u8], file: &str, length: usize) -> Result<Vec<f32>, DataError> {
    // Each published value takes 16 bytes; over-reserving a little avoids regrowth.
    let mut out: Vec<f32> = Vec::with_capacity(text.len() / 16 + length);
    scan(
        text,
        |line, index, tok| {
            if index >= length {
                return Ok(()); // counted, reported at the end of the line
            }
            match parse_f32(tok) {
                Some(v) if v.is_finite() => {
                    out.push(v);
                    Ok(())
                }
                Some(_) => {
                    let token = String::from_utf8_lossy(tok).into_owned();
                    let named = tok
                        .iter()
                        .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E'));
                    Err(if named {
                        DataError::NonFinite {
                            file: file.to_string(),
                            line,
                            token,
                        }
                    } else {
                        DataError::OutOfRange {
                            file: file.to_string(),
                            line,
                            token,
                        }
                    })
                }
                None => Err(DataError::NotANumber {
                    file: file.to_string(),
                    line,
                    token: String::from_utf8_lossy(tok).into_owned(),
                }),
            }
        },
        |line, found| {
            if found != length {
                return Err(DataError::WrongValueCount {
                    file: file.to_string(),
                    line,
                    expected: length,
                    found,
                });
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// Parses a file of one integer per line.
pub(crate) fn parse_ints(text: &[u8], file: &str) -> Result<Vec<i64>, DataError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    scan(
        text,
        |line, _, tok| {
            let v = std::str::from_utf8(tok)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| DataError::NotAnInteger {
                    file: file.to_string(),
                    line,
                    token: String::from_utf8_lossy(tok).into_owned(),
                })?;
            out.push(v);
            Ok(())
        },
        |line, found| {
            if found != 1 {
                return Err(DataError::NotOneValue {
                    file: file.to_string(),
                    line,
                    found,
                });
            }
            Ok(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_counts_lines_and_tokens() {
        let v = parse_signals(b"  1.0e+000  2.0e+000\r\n -3.0e-001  4.0e+000\r\n", "f", 2).unwrap();
        assert_eq!(v, [1.0, 2.0, -0.3, 4.0]);
        // No final newline.
        let v = parse_signals(b"1 2\n3 4", "f", 2).unwrap();
        assert_eq!(v, [1.0, 2.0, 3.0, 4.0]);
        // A blank line in the middle is a line with no values.
        let e = parse_signals(b"1 2\n\n3 4\n", "f", 2).unwrap_err();
        assert_eq!(e.to_string(), "f: line 2: expected 2 values, found 0");
        let e = parse_signals(b"1 2\n3 4 5\n", "f", 2).unwrap_err();
        assert_eq!(e.to_string(), "f: line 2: expected 2 values, found 3");
        let e = parse_signals(b"1 inf\n", "f", 2).unwrap_err();
        assert_eq!(e.to_string(), "f: line 1: non-finite value inf");
        let e = parse_signals(b"1 1e39\n", "f", 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: line 1: value 1e39 is out of the f32 range"
        );
        assert_eq!(parse_ints(b"1\n2\r\n 3 \n", "g").unwrap(), [1, 2, 3]);
        let e = parse_ints(b"1\n2 3\n", "g").unwrap_err();
        assert_eq!(
            e.to_string(),
            "g: line 2: expected one integer, found 2 values"
        );
        let e = parse_ints(b"1\n2.5\n", "g").unwrap_err();
        assert_eq!(e.to_string(), "g: line 2: value \"2.5\" is not an integer");
        assert!(parse_ints(b"", "g").unwrap().is_empty());
    }
}
