//! Finding and opening a dataset's input files: a plain (or `.gz`) file, a member streamed out of a zip
//! or tar.gz archive, or a folder tree (extracted or a zip); verifying archives; sha256 of files.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::result::ZipError;
use zip::ZipArchive;

use super::card::{ArchiveKind, Card, SourceCard};
use super::parse;
use super::DataError;

/// One input file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file on disk, decompressed on the fly when it ends in `.gz`.
    File(PathBuf),
    /// A member of an archive, streamed (never extracted to disk).
    Member {
        /// The archive.
        archive: PathBuf,
        /// Its format.
        kind: ArchiveKind,
        /// The member's path inside the archive.
        member: String,
    },
}

impl Input {
    /// A name for messages: the path, or `member in archive`.
    pub fn display(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Member {
                archive, member, ..
            } => format!("{member} in {}", archive.display()),
        }
    }

    /// The file on disk that holds the data (hashed for the cache key).
    pub fn disk_file(&self) -> &Path {
        match self {
            Input::File(p) => p,
            Input::Member { archive, .. } => archive,
        }
    }

    /// Calls `f` with a reader of the input's (decompressed) bytes and its display name.
    pub fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut dyn Read, &str) -> Result<T, DataError>,
    ) -> Result<T, DataError> {
        let name = self.display();
        match self {
            Input::File(path) => {
                let mut r = parse::open_maybe_gz(path)?;
                f(&mut r, &name)
            }
            Input::Member {
                archive,
                kind: ArchiveKind::Zip,
                member,
            } => {
                let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
                let mut zip = ZipArchive::new(BufReader::with_capacity(1 << 20, file))
                    .map_err(|e| corrupt_archive(archive, e))?;
                let mut entry = zip
                    .by_name(member)
                    .map_err(|e| zip_member_error(archive, member, e))?;
                f(&mut entry, &name)
            }
            Input::Member {
                archive,
                kind: ArchiveKind::TarGz,
                member,
            } => {
                let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
                let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file));
                let mut tar = tar::Archive::new(gz);
                let entries = tar.entries().map_err(|e| corrupt_archive(archive, e))?;
                for entry in entries {
                    let mut entry = entry.map_err(|e| corrupt_archive(archive, e))?;
                    let path = entry
                        .path()
                        .map_err(|e| corrupt_archive(archive, e))?
                        .to_string_lossy()
                        .into_owned();
                    if normalize_member(&path) == normalize_member(member) {
                        return f(&mut entry, &name);
                    }
                }
                Err(DataError::MissingMember {
                    archive: archive.clone(),
                    member: member.clone(),
                })
            }
        }
    }
}

/// A member path without a leading `./` or `/`.
fn normalize_member(path: &str) -> &str {
    path.trim_start_matches("./").trim_start_matches('/')
}

/// True when `path`'s name says it is an archive of `kind`.
fn looks_like(path: &Path, kind: ArchiveKind) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match kind {
        ArchiveKind::Zip => name.ends_with(".zip"),
        ArchiveKind::TarGz => name.ends_with(".tar.gz") || name.ends_with(".tgz"),
    }
}

/// Finds archive member `member` of the dataset described by `card` in `dir`.
///
/// Looks, in order, at: `dir` itself when it is a file (the archive, or the member file); the extracted
/// member `dir/<member>` (or `.gz`); `dir/<file name of member>` (`dir` is the extracted folder); the
/// archive `dir/<archive>`.
pub fn locate_member(dir: &Path, card: &Card, member: &str) -> Result<Input, DataError> {
    let source = card_source(card)?;
    if dir.is_file() {
        if looks_like(dir, source.kind) {
            return Ok(Input::Member {
                archive: dir.to_path_buf(),
                kind: source.kind,
                member: member.to_string(),
            });
        }
        return Ok(Input::File(dir.to_path_buf()));
    }
    let extracted = member
        .split('/')
        .fold(dir.to_path_buf(), |p, part| p.join(part));
    let base = member.rsplit('/').next().unwrap_or(member);
    for candidate in [extracted.clone(), dir.join(base)] {
        if candidate.is_file() {
            return Ok(Input::File(candidate));
        }
        let gz = with_suffix(&candidate, ".gz");
        if gz.is_file() {
            return Ok(Input::File(gz));
        }
    }
    let archive = dir.join(&source.archive);
    if archive.is_file() {
        return Ok(Input::Member {
            archive,
            kind: source.kind,
            member: member.to_string(),
        });
    }
    Err(not_found(
        card,
        dir,
        &format!("{} (extracted)", extracted.display()),
    ))
}

/// The "not found" error for `card` in `dir`, saying what was looked for and how to get it.
pub fn not_found(card: &Card, dir: &Path, looked_for: &str) -> DataError {
    let hint = match &card.source {
        Some(s) => format!(
            "expected {looked_for} or the archive {}. Get it with `codats datasets download {}` \
             (or download {} yourself and put it there), or point --data-dir at it",
            dir.join(&s.archive).display(),
            card.name,
            s.effective_url()
        ),
        None => format!("expected {looked_for}"),
    };
    DataError::NotFound {
        title: card.title.clone(),
        dir: dir.to_path_buf(),
        hint,
    }
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The card's `[source]`, or a spec error.
fn card_source(card: &Card) -> Result<&SourceCard, DataError> {
    card.source.as_ref().ok_or_else(|| DataError::Spec {
        name: card.name.clone(),
        reason: "no [source] table".into(),
    })
}

/// Maps an error opening an archive.
fn corrupt_archive(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::CorruptArchive {
        path: path.to_path_buf(),
        // The tar reader quotes raw header bytes.
        reason: parse::one_line(&e.to_string()),
    }
}

/// Maps a zip error on member `member`.
fn zip_member_error(path: &Path, member: &str, e: ZipError) -> DataError {
    match e {
        ZipError::FileNotFound => DataError::MissingMember {
            archive: path.to_path_buf(),
            member: member.to_string(),
        },
        ZipError::Io(e) => DataError::io(path, e),
        other => DataError::CorruptMember {
            archive: path.to_path_buf(),
            member: member.to_string(),
            reason: other.to_string(),
        },
    }
}

/// A folder of files: an extracted tree on disk, or the same tree inside a zip archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// Files under this folder.
    Dir(PathBuf),
    /// Files inside this zip archive.
    Zip(PathBuf),
}

impl Tree {
    /// Every file, as `/`-separated paths relative to the root, sorted.
    pub fn files(&self) -> Result<Vec<String>, DataError> {
        let mut out = Vec::new();
        match self {
            Tree::Dir(root) => walk(root, "", &mut out)?,
            Tree::Zip(path) => {
                let file = File::open(path).map_err(|e| DataError::io(path, e))?;
                let zip =
                    ZipArchive::new(BufReader::new(file)).map_err(|e| corrupt_archive(path, e))?;
                out = zip_file_names(&zip, path)?;
            }
        }
        out.sort();
        Ok(out)
    }

    /// A display name for file `rel`.
    pub fn display(&self, rel: &str) -> String {
        match self {
            Tree::Dir(root) => rel
                .split('/')
                .fold(root.clone(), |p, part| p.join(part))
                .display()
                .to_string(),
            Tree::Zip(path) => format!("{rel} in {}", path.display()),
        }
    }

    /// A reader context for [`Tree::read`] (an open archive, one per thread).
    pub fn context(&self) -> Result<Option<ZipArchive<BufReader<File>>>, DataError> {
        match self {
            Tree::Dir(_) => Ok(None),
            Tree::Zip(path) => {
                let file = File::open(path).map_err(|e| DataError::io(path, e))?;
                ZipArchive::new(BufReader::new(file))
                    .map(Some)
                    .map_err(|e| corrupt_archive(path, e))
            }
        }
    }

    /// Reads file `rel` in full, decompressing it when it ends in `.gz`.
    pub fn read(
        &self,
        ctx: &mut Option<ZipArchive<BufReader<File>>>,
        rel: &str,
    ) -> Result<Vec<u8>, DataError> {
        let bytes = match (self, ctx) {
            (Tree::Dir(root), _) => {
                let path = rel.split('/').fold(root.clone(), |p, part| p.join(part));
                std::fs::read(&path).map_err(|e| DataError::io(&path, e))?
            }
            (Tree::Zip(path), Some(zip)) => {
                let mut entry = zip
                    .by_name(rel)
                    .map_err(|e| zip_member_error(path, rel, e))?;
                let mut out = Vec::with_capacity(entry.size().min(1 << 30) as usize);
                entry
                    .read_to_end(&mut out)
                    .map_err(|e| DataError::CorruptMember {
                        archive: path.clone(),
                        member: rel.to_string(),
                        reason: e.to_string(),
                    })?;
                out
            }
            (Tree::Zip(path), None) => {
                return Err(DataError::Spec {
                    name: path.display().to_string(),
                    reason: "archive read without an open context".into(),
                })
            }
        };
        if rel.ends_with(".gz") {
            let mut out = Vec::with_capacity(bytes.len() * 4);
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .map_err(|e| DataError::BadFile {
                    file: self.display(rel),
                    reason: format!("cannot decompress: {e}"),
                })?;
            return Ok(out);
        }
        Ok(bytes)
    }

    /// The files on disk whose contents determine the tree (hashed for the cache key).
    pub fn disk_files(&self, rels: &[String]) -> Vec<PathBuf> {
        match self {
            Tree::Dir(root) => rels
                .iter()
                .map(|rel| rel.split('/').fold(root.clone(), |p, part| p.join(part)))
                .collect(),
            Tree::Zip(path) => vec![path.clone()],
        }
    }
}

/// The files (not folders) of a zip archive, as member paths without a leading `./` or `/`
/// (`path` names the archive in messages).
pub(crate) fn zip_file_names<R: Read + io::Seek>(
    zip: &ZipArchive<R>,
    path: &Path,
) -> Result<Vec<String>, DataError> {
    let mut out = Vec::new();
    for name in zip.file_names() {
        let name = name.map_err(|e| corrupt_archive(path, e))?;
        if !name.ends_with('/') {
            out.push(normalize_member(&name).to_string());
        }
    }
    Ok(out)
}

/// Reads every member of a zip archive to its end through `drain` (which checks each member's
/// CRC-32), returning the member paths (`path` names the archive in messages).
pub(crate) fn drain_zip<R: Read + io::Seek>(
    zip: &mut ZipArchive<R>,
    path: &Path,
    drain: &mut dyn FnMut(&mut dyn Read, &str) -> Result<u64, DataError>,
) -> Result<(Vec<String>, u64), DataError> {
    let (mut names, mut bytes) = (Vec::new(), 0u64);
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| corrupt_archive(path, e))?;
        let name = entry
            .name()
            .map_err(|e| corrupt_archive(path, e))?
            .to_string();
        bytes += drain(&mut entry, &name)?;
        names.push(normalize_member(&name).to_string());
    }
    Ok((names, bytes))
}

/// Reads every member of an (uncompressed) tar stream to its end through `drain`, returning the
/// member paths and the stream itself (`path` names the archive in messages).
pub(crate) fn drain_tar<R: Read>(
    tar: R,
    path: &Path,
    drain: &mut dyn FnMut(&mut dyn Read, &str) -> Result<u64, DataError>,
) -> Result<(Vec<String>, u64, R), DataError> {
    let (mut names, mut bytes) = (Vec::new(), 0u64);
    let mut tar = tar::Archive::new(tar);
    let entries = tar.entries().map_err(|e| corrupt_archive(path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt_archive(path, e))?;
        let name = entry
            .path()
            .map_err(|e| corrupt_archive(path, e))?
            .to_string_lossy()
            .into_owned();
        bytes += drain(&mut entry, &name)?;
        names.push(normalize_member(&name).to_string());
    }
    Ok((names, bytes, tar.into_inner()))
}

/// Lists files under `dir` (relative names prefixed by `prefix`) into `out`, skipping hidden entries.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            walk(&path, &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// The sha256 of a file's bytes, in lower-case hex (streamed).
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`verify_archive`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCheck {
    /// Members in the archive.
    pub members: usize,
    /// Uncompressed bytes read (every member in full).
    pub bytes: u64,
    /// The archive's sha256.
    pub sha256: String,
    /// Whether the card recorded a sha256 to compare with.
    pub sha256_known: bool,
}

/// Verifies an archive against its card: the sha256 where known, the archive reads end to end
/// (zip CRC-32 of every member, gzip CRC of a tar.gz), and every expected member is present.
pub fn verify_archive(path: &Path, source: &SourceCard) -> Result<ArchiveCheck, DataError> {
    let sha256 = sha256_file(path)?;
    if let Some(expected) = &source.sha256 {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(DataError::Sha256Mismatch {
                path: path.to_path_buf(),
                expected: expected.to_ascii_lowercase(),
                found: sha256,
            });
        }
    }
    let names: Vec<String>;
    let bytes: u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut drain = |r: &mut dyn Read, name: &str| -> Result<u64, DataError> {
        let mut n = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DataError::CorruptMember {
                        archive: path.to_path_buf(),
                        member: name.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    };
    match source.kind {
        ArchiveKind::Zip => {
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let mut zip =
                ZipArchive::new(BufReader::new(file)).map_err(|e| corrupt_archive(path, e))?;
            (names, bytes) = drain_zip(&mut zip, path, &mut drain)?;
        }
        ArchiveKind::TarGz => {
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(file));
            let mut rest;
            (names, bytes, rest) = drain_tar(gz, path, &mut drain)?;
            // Read to the end of the gzip stream so its CRC and length are checked.
            drain(&mut rest, "(end of archive)")?;
        }
    }
    // An expected member may also sit under a top folder (an archive re-zipped with its folder).
    for member in &source.members {
        let m = normalize_member(member);
        let suffix = format!("/{m}");
        if !names.iter().any(|n| n == m || n.ends_with(&suffix)) {
            return Err(DataError::MissingMember {
                archive: path.to_path_buf(),
                member: member.clone(),
            });
        }
    }
    Ok(ArchiveCheck {
        members: names.len(),
        bytes,
        sha256,
        sha256_known: source.sha256.is_some(),
    })
}
