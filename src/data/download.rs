//! Downloading dataset archives: stream to a temp file, verify, then rename atomically into place.
//!
//! The URL comes from the dataset's card; its `url_env` variable (e.g. `CODATS_UCIHAR_URL`) fetches
//! from elsewhere (a mirror, or a local server in tests). UCI HAR's own download, verified against its
//! detailed member list, is [`crate::data::formats::ucihar::ensure_ucihar`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::card::Card;
use super::source;
use super::DataError;

/// Downloads `url` to `dest` through a temp file checked by `verify`; on any error nothing is left at
/// `dest` (`fallback_name` names the temp file when `dest` has no file name).
pub fn download_verified(
    url: &str,
    dest: &Path,
    fallback_name: &str,
    verify: impl FnOnce(&Path) -> Result<(), DataError>,
    progress: bool,
) -> Result<(), DataError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| fallback_name.to_string());
    let (temp, file) = TempFile::create(&dir, &file_name)?;

    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        path: dest.to_path_buf(),
        reason,
    };
    fetch(url, file, temp.path(), progress).map_err(fail)?;
    verify(temp.path()).map_err(|e| DataError::DownloadVerify {
        url: url.to_string(),
        path: dest.to_path_buf(),
        source: Box::new(e),
    })?;
    temp.persist(dest)
}

/// Downloads the archive described by `card`'s `[source]` into `dir` (verified against the card,
/// atomically), unless it is already there; returns the archive's path.
pub fn ensure_archive(card: &Card, dir: &Path, progress: bool) -> Result<PathBuf, DataError> {
    let source = card
        .source
        .as_ref()
        .ok_or_else(|| DataError::Options(format!("{} has nothing to download", card.name)))?;
    let dest = dir.join(&source.archive);
    if dest.is_file() {
        return Ok(dest);
    }
    download_verified(
        &source.effective_url(),
        &dest,
        &source.archive,
        |p| source::verify_archive(p, source).map(|_| ()),
        progress,
    )?;
    Ok(dest)
}

/// Streams the HTTP body of `url` into `file`; errors are one-line reasons.
fn fetch(url: &str, file: File, temp_path: &Path, progress: bool) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "the server answered HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string());
    }
    let expected = response.body().content_length();
    let bar = progress_bar(expected, progress);
    let mut reader = response.into_body().into_reader();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; 1 << 16];
    let mut received: u64 = 0;
    let short = |received: u64| match expected {
        Some(len) => format!("after {received} of {len} bytes"),
        None => format!("after {received} bytes"),
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(format!("{e} {}", short(received)));
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| format!("writing {}: {e}", temp_path.display()))?;
        received += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    if let Some(len) = expected {
        if received != len {
            return Err(format!("the connection closed {}", short(received)));
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| format!("writing {}: {}", temp_path.display(), e.error()))?;
    file.sync_all()
        .map_err(|e| format!("writing {}: {e}", temp_path.display()))?;
    Ok(())
}

/// A byte progress bar on stderr, hidden unless asked for and stderr is a terminal.
fn progress_bar(len: Option<u64>, progress: bool) -> ProgressBar {
    if !progress || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = if len.is_some() {
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{spinner} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// A temp file next to the destination, deleted on drop unless persisted.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    /// Creates `.<name>.part-<pid>-<n>` in `dir`, never reusing an existing name.
    fn create(dir: &Path, name: &str) -> Result<(TempFile, File), DataError> {
        let pid = std::process::id();
        let mut attempt = 0u32;
        loop {
            let path = dir.join(format!(".{name}.part-{pid}-{attempt}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((TempFile { path, keep: false }, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1
                }
                Err(e) => return Err(DataError::io(&path, e)),
            }
        }
    }

    /// The temp file's path.
    fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temp file to `dest` (atomic on one file system).
    fn persist(mut self, dest: &Path) -> Result<(), DataError> {
        fs::rename(&self.path, dest).map_err(|e| DataError::io(dest, e))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}
