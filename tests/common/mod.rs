//! Shared test helpers: temp folders, the real archive's location, and UCI HAR fixtures in the published format.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use codats::data::spec::DatasetSpec;

/// A folder under Cargo's test temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty folder named after `name`.
    pub fn new(name: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("codats-tests")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The stdout of a finished `codats` command, which must have succeeded (else both its
/// outputs are shown).
pub fn succeeded(o: std::process::Output, args: &dyn std::fmt::Debug) -> String {
    assert!(
        o.status.success(),
        "codats {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The real archive: `$CODATS_DATA_DIR/ucihar/UCI HAR Dataset.zip`, default `../shared/data`. Panics if absent.
pub fn real_archive_dir() -> PathBuf {
    let root = std::env::var_os("CODATS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = root.join("ucihar");
    let zip = dir.join("UCI HAR Dataset.zip");
    assert!(
        zip.is_file(),
        "the real UCI HAR archive is required for this test but {} does not exist; \
         set CODATS_DATA_DIR to the folder holding ucihar/UCI HAR Dataset.zip",
        zip.display()
    );
    // Absolute, so symlinks to it and child processes in other directories still find it
    // (the README's command passes the relative CODATS_DATA_DIR=../shared/data).
    std::fs::canonicalize(&dir).expect("canonical data dir")
}

/// Formats like C's `%15.7e` with a 3-digit exponent (MATLAB/Windows style), e.g. ` 1.8085150e-004`.
pub fn fmt_e3(v: f64) -> String {
    let s = format!("{v:.7e}");
    let (mant, exp) = s.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{:>15}", format!("{mant}e{sign}{:03}", exp.abs()))
}

/// One window of the fixture: subject, label (1..6) and 9 x 128 values.
#[derive(Clone)]
pub struct Window {
    pub subject: u32,
    pub label: u32,
    /// `[channel][t]`.
    pub values: Vec<Vec<f64>>,
}

/// A deterministic window whose values vary with `seed`, channel and time.
pub fn window(subject: u32, label: u32, seed: u32) -> Window {
    let values = (0..9)
        .map(|c| {
            (0..128)
                .map(|t| {
                    let k = f64::from(seed * 1000 + c * 128 + t);
                    let scale = 10f64.powi((c as i32 % 5) - 3); // 1e-3 .. 1e1
                    (k * 0.731).sin() * 1.7 * scale
                })
                .collect()
        })
        .collect();
    Window {
        subject,
        label,
        values,
    }
}

/// The value the loader must produce: the 8-significant-digit text, rounded to f32.
pub fn expected_f32(v: f64) -> f32 {
    format!("{v:.7e}").parse().expect("float")
}

/// The fixture's train and test windows.
pub struct Fixture {
    pub train: Vec<Window>,
    pub test: Vec<Window>,
}

/// Train: subjects 1, 1, 3 (labels 1, 6, 2); test: subjects 2, 3 (labels 4, 5).
pub fn small_fixture() -> Fixture {
    Fixture {
        train: vec![window(1, 1, 0), window(1, 6, 1), window(3, 2, 2)],
        test: vec![window(2, 4, 3), window(3, 5, 4)],
    }
}

/// A signal file: one line per window, ` %15.7e` fields, CR LF.
pub fn signal_text(windows: &[Window], channel: usize) -> String {
    let mut s = String::new();
    for w in windows {
        for &v in &w.values[channel] {
            s.push(' ');
            s.push_str(&fmt_e3(v));
        }
        s.push_str("\r\n");
    }
    s
}

/// A y/subject file: one integer per line, LF.
pub fn int_text(values: impl IntoIterator<Item = u32>) -> String {
    values.into_iter().map(|v| format!("{v}\n")).collect()
}

/// Every member (path relative to the root folder) and its contents, in spec order.
pub fn fixture_files(f: &Fixture) -> Vec<(String, String)> {
    let spec = DatasetSpec::ucihar().expect("spec");
    let mut files = Vec::new();
    for split in &spec.splits {
        let windows = if split.name == "train" {
            &f.train
        } else {
            &f.test
        };
        for (c, m) in split.signals.iter().enumerate() {
            files.push((m.path.clone(), signal_text(windows, c)));
        }
        files.push((
            split.labels.path.clone(),
            int_text(windows.iter().map(|w| w.label)),
        ));
        files.push((
            split.subjects.path.clone(),
            int_text(windows.iter().map(|w| w.subject)),
        ));
    }
    files
}

/// Writes the extracted folder `dir/UCI HAR Dataset/...`.
pub fn write_folder(dir: &Path, files: &[(String, String)]) {
    for (path, text) in files {
        let p = dir.join("UCI HAR Dataset").join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write fixture file");
    }
}

/// The zip bytes of `files` under `UCI HAR Dataset/` (stored uncompressed when `stored`, else deflated).
pub fn zip_bytes(files: &[(String, String)], stored: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if stored {
        zip::CompressionMethod::Stored
    } else {
        zip::CompressionMethod::Deflated
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (path, text) in files {
        w.start_file(format!("UCI HAR Dataset/{path}"), options)
            .expect("start zip member");
        w.write_all(text.as_bytes()).expect("write zip member");
    }
    w.finish().expect("finish zip").into_inner()
}

/// Writes `dir/UCI HAR Dataset.zip` and returns its path.
pub fn write_zip(dir: &Path, files: &[(String, String)], stored: bool) -> PathBuf {
    let path = dir.join("UCI HAR Dataset.zip");
    std::fs::write(&path, zip_bytes(files, stored)).expect("write zip");
    path
}

/// Replaces the contents of member `path` (relative to the root folder).
pub fn replace(files: &mut [(String, String)], path: &str, f: impl FnOnce(&str) -> String) {
    let entry = files
        .iter_mut()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no fixture member {path}"));
    entry.1 = f(&entry.1);
}

/// Asserts two datasets are identical, value for value.
pub fn assert_same(a: &codats::data::Dataset, b: &codats::data::Dataset) {
    assert_eq!(a.name, b.name);
    assert_eq!(a.channels, b.channels);
    assert_eq!(a.length, b.length);
    assert_eq!(a.class_names, b.class_names);
    assert_eq!(a.zscore, b.zscore);
    assert_eq!(a.domain_ids(), b.domain_ids());
    for (da, db) in a.domains.iter().zip(&b.domains) {
        assert_eq!(da.id, db.id);
        assert_eq!(da.y, db.y, "labels of domain {}", da.id);
        assert!(
            da.x.iter()
                .map(|v| v.to_bits())
                .eq(db.x.iter().map(|v| v.to_bits())),
            "windows of domain {} differ",
            da.id
        );
    }
}

pub mod cli;
pub mod loaders;

/// The folder holding the real datasets: `$CODATS_DATA_DIR`, default `../shared/data`. Panics if absent.
pub fn real_data_root() -> PathBuf {
    let root = std::env::var_os("CODATS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        root.is_dir(),
        "the real datasets are required for this test but {} does not exist; set CODATS_DATA_DIR",
        root.display()
    );
    root
}

/// A real dataset's folder (`<root>/<name>`), checked to exist (the test fails, never skips).
pub fn real_dataset(name: &str) -> PathBuf {
    let dir = real_data_root().join(name);
    assert!(
        dir.exists(),
        "the real {name} data is required for this test but {} does not exist; set CODATS_DATA_DIR",
        dir.display()
    );
    dir
}
