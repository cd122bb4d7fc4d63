//! Cache of preprocessed windows in Arrow IPC files, keyed by the inputs' sha256, the preprocessing
//! parameters and the cache format version: a second load of the same data reads the cache, and a
//! changed input file, card or option builds a new entry.
//!
//! The IPC files are written and read with polars' IPC support (`polars` feature `ipc`). Polars is
//! already a dependency for reading the user's CSV/Parquet, and with its `parquet` feature on, `ipc`
//! adds no crate to the build; the lean `arrow-ipc`/`arrow-array` crates would instead add a second,
//! separate Arrow implementation. One file per entry, `<dataset>-<key>.arrow`, with one row per window:
//! `domain` (u32), `label` (u32), `valid` (u32, real samples of zero-padded windows) and `x`
//! (list of f32, `[channels, length]`); the schema's custom metadata `codats` holds a JSON
//! [`CacheMeta`] (shape, class names, the load report, the full key). Entries are written to a temp file
//! and renamed into place, so concurrent runs never see half an entry.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::parse::run_parallel;
use super::report::LoadReport;
use super::source::{hex, sha256_file};
use super::{DataError, Dataset, DomainData};

/// Bumped whenever the file layout or the meaning of a cached window changes.
pub const FORMAT_VERSION: u32 = 1;

/// Environment variable that overrides the cache folder.
pub const CACHE_DIR_ENV: &str = "CODATS_CACHE_DIR";

/// The cache folder: `$CODATS_CACHE_DIR`, else `<user cache>/codats/cache`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(cache) = dirs::cache_dir() {
        return cache.join("codats").join("cache");
    }
    if let Some(home) = dirs::home_dir() {
        return home.join(".cache").join("codats").join("cache");
    }
    PathBuf::from("codats-cache")
}

/// What an entry records besides its windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMeta {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The full key.
    pub key: String,
    /// Dataset name.
    pub dataset: String,
    /// The data folder or file the entry was built from.
    pub source: String,
    /// Channels per window.
    pub channels: usize,
    /// Samples per window.
    pub length: usize,
    /// Class names.
    pub class_names: Vec<String>,
    /// Whether the dataset is z-scored per domain.
    pub zscore: bool,
    /// Whether windows are zero-padded (`valid` holds their real lengths).
    pub padded: bool,
    /// The load report of the build.
    pub report: LoadReport,
}

/// The cache key: sha256 over the format version, the dataset name, the preprocessing parameters
/// (`params`, e.g. the dataset card and options as text) and every input file's path, size and sha256.
pub fn key(dataset: &str, params: &str, files: &[PathBuf]) -> Result<String, DataError> {
    let mut files: Vec<&PathBuf> = files.iter().collect();
    files.sort();
    files.dedup();
    let sums = run_parallel(
        &files,
        || (),
        |_, path| -> Result<(u64, String), DataError> {
            let len = std::fs::metadata(path)
                .map_err(|e| DataError::io(path.as_path(), e))?
                .len();
            Ok((len, sha256_file(path)?))
        },
    );
    let mut h = Sha256::new();
    h.update(format!("codats-cache v{FORMAT_VERSION}\n{dataset}\n").as_bytes());
    h.update(params.as_bytes());
    h.update(b"\n");
    for (path, sum) in files.iter().zip(sums) {
        let (len, sha) = sum?;
        h.update(format!("{}\t{len}\t{sha}\n", path.display()).as_bytes());
    }
    Ok(hex(&h.finalize()))
}

/// The file of entry `key` of `dataset` in `dir`.
pub fn entry_path(dir: &Path, dataset: &str, key: &str) -> PathBuf {
    dir.join(format!("{dataset}-{}.arrow", &key[..key.len().min(24)]))
}

fn cache_err(path: &Path, reason: impl std::fmt::Display) -> DataError {
    DataError::Cache {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads entry `key` of `dataset`; `Ok(None)` when there is none (or it belongs to another key).
pub fn read(
    dir: &Path,
    dataset: &str,
    key: &str,
) -> Result<Option<(Dataset, CacheMeta)>, DataError> {
    let path = entry_path(dir, dataset, key);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataError::io(&path, e)),
    };
    let mut reader = IpcReader::new(file);
    let meta = reader
        .custom_metadata()
        .map_err(|e| cache_err(&path, e))?
        .and_then(|m| m.get("codats").map(|v| v.to_string()))
        .ok_or_else(|| cache_err(&path, "no codats metadata"))?;
    let meta: CacheMeta = serde_json::from_str(&meta).map_err(|e| cache_err(&path, e))?;
    if meta.format_version != FORMAT_VERSION || meta.key != key || meta.dataset != dataset {
        return Ok(None);
    }
    let df = reader.finish().map_err(|e| cache_err(&path, e))?;
    let window = meta.channels * meta.length;
    let col = |name: &str| -> Result<Vec<u32>, DataError> {
        let c = df.column(name).map_err(|e| cache_err(&path, e))?;
        let ca = c.u32().map_err(|e| cache_err(&path, e))?;
        ca.iter()
            .map(|v| v.ok_or_else(|| cache_err(&path, format!("null in {name}"))))
            .collect()
    };
    let domain = col("domain")?;
    let label = col("label")?;
    let valid = col("valid")?;
    let lists = df
        .column("x")
        .map_err(|e| cache_err(&path, e))?
        .list()
        .map_err(|e| cache_err(&path, e))?
        .rechunk();
    let inner = lists.get_inner();
    let values = inner.f32().map_err(|e| cache_err(&path, e))?;
    let values = values.rechunk();
    let x = values.cont_slice().map_err(|e| cache_err(&path, e))?;
    if x.len() != domain.len() * window || label.len() != domain.len() {
        return Err(cache_err(
            &path,
            "window data does not match the recorded shape",
        ));
    }
    let mut domains: Vec<DomainData> = Vec::new();
    for (i, &d) in domain.iter().enumerate() {
        if domains.last().is_none_or(|last| last.id != d) {
            domains.push(DomainData {
                id: d,
                x: Vec::new(),
                y: Vec::new(),
                valid_lengths: meta.padded.then(Vec::new),
            });
        }
        let last = domains.last_mut().expect("pushed above");
        last.x.extend_from_slice(&x[i * window..(i + 1) * window]);
        last.y.push(label[i]);
        if let Some(v) = last.valid_lengths.as_mut() {
            v.push(valid[i]);
        }
    }
    let ds = Dataset {
        name: dataset.to_string(),
        channels: meta.channels,
        length: meta.length,
        class_names: meta.class_names.clone(),
        zscore: meta.zscore,
        domains,
    };
    Ok(Some((ds, meta)))
}

/// Writes `ds` as entry `key` (atomically: temp file, then rename); returns the entry's path.
pub fn write(
    dir: &Path,
    key: &str,
    ds: &Dataset,
    report: &LoadReport,
    source: &str,
) -> Result<PathBuf, DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let path = entry_path(dir, &ds.name, key);
    let window = ds.channels * ds.length;
    let padded = ds.domains.iter().any(|d| d.valid_lengths.is_some());
    // One record batch per domain: the IPC encoder then buffers one domain at a time.
    let mut df: Option<DataFrame> = None;
    for d in &ds.domains {
        let m = d.y.len();
        let mut x = ListPrimitiveChunkedBuilder::<Float32Type>::new(
            "x".into(),
            m,
            m * window,
            DataType::Float32,
        );
        for w in d.x.chunks_exact(window.max(1)).take(m) {
            x.append_slice(w);
        }
        let valid: Vec<u32> = match &d.valid_lengths {
            Some(v) => v.clone(),
            None => vec![ds.length as u32; m],
        };
        let part = DataFrame::new(
            m,
            vec![
                Column::new("domain".into(), vec![d.id; m]),
                Column::new("label".into(), d.y.clone()),
                Column::new("valid".into(), valid),
                x.finish().into_column(),
            ],
        )
        .map_err(|e| cache_err(&path, e))?;
        match df.as_mut() {
            None => df = Some(part),
            Some(all) => {
                all.vstack_mut(&part).map_err(|e| cache_err(&path, e))?;
            }
        }
    }
    let Some(mut df) = df else {
        return Err(cache_err(&path, "no domains to cache"));
    };
    let meta = CacheMeta {
        format_version: FORMAT_VERSION,
        key: key.to_string(),
        dataset: ds.name.clone(),
        source: source.to_string(),
        channels: ds.channels,
        length: ds.length,
        class_names: ds.class_names.clone(),
        zscore: ds.zscore,
        padded,
        report: report.clone(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| cache_err(&path, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    let result = (|| -> Result<(), DataError> {
        let mut file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut writer = IpcWriter::new(&mut file);
        writer.set_custom_schema_metadata(Arc::new(
            [("codats".into(), json.as_str().into())]
                .into_iter()
                .collect(),
        ));
        writer.finish(&mut df).map_err(|e| cache_err(&tmp, e))?;
        file.sync_all().map_err(|e| DataError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| DataError::io(&path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// What [`clear`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleared {
    /// Entries (and stale temp files) removed.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
}

/// Removes cache entries in `dir`: all, or only `dataset`'s, or only those built from `source`.
pub fn clear(
    dir: &Path,
    dataset: Option<&str>,
    source: Option<&Path>,
) -> Result<Cleared, DataError> {
    let mut out = Cleared::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(DataError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_tmp = name.starts_with('.') && name.contains(".arrow.tmp-");
        let is_entry = name.ends_with(".arrow") && !name.starts_with('.');
        if !(is_entry || stale_tmp) {
            continue;
        }
        let base = name.trim_start_matches('.');
        if let Some(d) = dataset {
            if !base.starts_with(&format!("{d}-")) {
                continue;
            }
        }
        let path = entry.path();
        if let Some(src) = source {
            if !is_entry {
                continue;
            }
            let built_from = File::open(&path)
                .ok()
                .and_then(|f| IpcReader::new(f).custom_metadata().ok().flatten())
                .and_then(|m| m.get("codats").map(|v| v.to_string()))
                .and_then(|j| serde_json::from_str::<CacheMeta>(&j).ok())
                .map(|m| m.source);
            if built_from.as_deref() != Some(src.display().to_string().as_str()) {
                continue;
            }
        }
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
        out.files += 1;
        out.bytes += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(padded: bool) -> Dataset {
        let dom = |id: u32, n: usize| DomainData {
            id,
            x: (0..n * 2 * 3).map(|v| v as f32 * 0.5 - id as f32).collect(),
            y: (0..n).map(|i| (i % 2) as u32).collect(),
            valid_lengths: padded.then(|| (0..n).map(|i| (i % 3 + 1) as u32).collect()),
        };
        Dataset {
            name: "toy".into(),
            channels: 2,
            length: 3,
            class_names: vec!["a".into(), "b".into()],
            zscore: true,
            domains: vec![dom(3, 4), dom(7, 5)],
        }
    }

    #[test]
    fn entries_round_trip_exactly() {
        let dir = std::env::temp_dir().join(format!("codats-cache-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for padded in [false, true] {
            let ds = toy(padded);
            let mut report = LoadReport::default();
            report.skip("blank line", 2, || "f: line 3".into());
            let key = if padded { "b" } else { "a" }.repeat(64);
            let path = write(&dir, &key, &ds, &report, "/data/toy").unwrap();
            assert!(path.is_file());
            let (back, meta) = read(&dir, "toy", &key).unwrap().expect("hit");
            assert_eq!(meta.report, report);
            assert_eq!(meta.source, "/data/toy");
            assert_eq!(back.domain_ids(), [3, 7]);
            for (a, b) in ds.domains.iter().zip(&back.domains) {
                assert_eq!(a.x, b.x);
                assert_eq!(a.y, b.y);
                assert_eq!(a.valid_lengths, b.valid_lengths);
            }
            // Another key with the same prefix is a miss, not a wrong hit.
            let mut other = key.clone();
            other.replace_range(60.., "ffff");
            assert!(read(&dir, "toy", &other).unwrap().is_none());
        }
        let c = clear(&dir, Some("other"), None).unwrap();
        assert_eq!(c.files, 0);
        let c = clear(&dir, None, Some(Path::new("/data/toy"))).unwrap();
        assert_eq!(c.files, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
