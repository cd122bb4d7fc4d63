//! Entry points for the parser fuzz targets (`fuzz/`) and their corpus replay
//! (`tests/fuzz_corpus.rs`): each feeds raw bytes to one parser exactly as its loader does and
//! returns a short summary of what was parsed, or the error message. Not part of the API.
//!
//! Every entry point upholds what the fuzzers check: it never panics, and an error is one
//! non-empty line. [`TARGETS`] lists them by the fuzz target's name.

use std::io::Cursor;
use std::path::Path;

use crate::data::card::Card;
use crate::data::formats::{hapt, hhar, tabular, ucihar, uwave, wisdm};
use crate::data::images::{cifar, digits, idx};
use crate::data::registry::DatasetName;
use crate::data::spec::DatasetSpec;
use crate::data::window::{LabelRule, WindowSpec};
use crate::data::DataError;

/// What an entry point returns: a summary of the parsed value, or the error's message.
pub type Outcome = Result<String, String>;

/// One fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and
/// `fuzz/corpus/<name>/` folder) and its entry point.
pub struct Target {
    /// The fuzz target's name.
    pub name: &'static str,
    /// Parses the bytes.
    pub run: fn(&[u8]) -> Outcome,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "ucihar_signals",
        run: ucihar_signals,
    },
    Target {
        name: "ucihar_labels",
        run: ucihar_labels,
    },
    Target {
        name: "ucihar_zip",
        run: ucihar_zip,
    },
    Target {
        name: "hhar_csv",
        run: hhar_csv,
    },
    Target {
        name: "wisdm_raw",
        run: wisdm_raw,
    },
    Target {
        name: "uwave_gesture",
        run: uwave_gesture,
    },
    Target {
        name: "hapt_labels",
        run: hapt_labels,
    },
    Target {
        name: "hapt_signal",
        run: hapt_signal,
    },
    Target {
        name: "tabular_csv",
        run: tabular_csv,
    },
    Target {
        name: "idx",
        run: idx_file,
    },
    Target {
        name: "cifar_batch",
        run: cifar_batch,
    },
    Target {
        name: "digits_csv",
        run: digits_csv,
    },
    Target {
        name: "sweep_spec",
        run: sweep_spec,
    },
    Target {
        name: "archive_members",
        run: archive_members,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs target `name` on `data` and checks the invariants: no panic (the caller's), and an
/// error that is one non-empty line. Panics (a fuzz finding) when an error breaks them.
pub fn check(name: &str, data: &[u8]) -> Outcome {
    let t = target(name).unwrap_or_else(|| panic!("no fuzz target {name}"));
    let out = (t.run)(data);
    if let Err(msg) = &out {
        assert!(
            !msg.trim().is_empty() && !msg.contains('\n') && !msg.contains('\r'),
            "{name}: the error is not one non-empty line: {msg:?}"
        );
    }
    out
}

const FILE: &str = "fuzz-input";

fn data_err(e: DataError) -> String {
    e.to_string()
}

fn card(name: &str) -> Result<Card, String> {
    DatasetName::parse(name)?.card().map_err(data_err)
}

fn summary(ds: &crate::data::Dataset) -> String {
    format!(
        "{} domains, {} windows, {} classes",
        ds.domains.len(),
        ds.n_windows(),
        ds.n_classes()
    )
}

/// A UCI HAR signal file (`body_acc_x_train.txt`): 128 values a line.
pub fn ucihar_signals(data: &[u8]) -> Outcome {
    let values = ucihar::parse_signals(data, FILE, 128).map_err(data_err)?;
    Ok(format!("{} windows", values.len() / 128))
}

/// A UCI HAR labels file (`y_train.txt`, first byte even) or subjects file (`subject_train.txt`,
/// first byte odd; the byte is part of the text).
pub fn ucihar_labels(data: &[u8]) -> Outcome {
    let spec = DatasetSpec::ucihar().map_err(data_err)?;
    let subjects = data.first().is_some_and(|b| b % 2 == 1);
    let ids = ucihar::parse_ids(&spec, subjects, data, FILE).map_err(data_err)?;
    Ok(format!("{} ids", ids.len()))
}

/// A whole `UCI HAR Dataset.zip` (member names, CRC-32s, every member's lines).
pub fn ucihar_zip(data: &[u8]) -> Outcome {
    let spec = DatasetSpec::ucihar().map_err(data_err)?;
    let ds = ucihar::load_zip_bytes(Path::new(FILE), data, &spec).map_err(data_err)?;
    Ok(summary(&ds))
}

/// UCI HHAR `Phones_accelerometer.csv` rows.
pub fn hhar_csv(data: &[u8]) -> Outcome {
    let card = card("ucihhar")?;
    let (ds, _) = hhar::parse(&mut Cursor::new(data), FILE, &card).map_err(data_err)?;
    Ok(summary(&ds))
}

/// WISDM raw `user,activity,timestamp,x,y,z;` records (WISDM AR's card; all users).
pub fn wisdm_raw(data: &[u8]) -> Outcome {
    let card = card("wisdm_ar")?;
    let (ds, _) = wisdm::parse(&mut Cursor::new(data), FILE, &card, true).map_err(data_err)?;
    Ok(summary(&ds))
}

/// One uWave gesture file (`x y z` lines).
pub fn uwave_gesture(data: &[u8]) -> Outcome {
    let mut sample = Vec::new();
    uwave::parse_gesture(data, FILE, &mut sample).map_err(data_err)?;
    Ok(format!("{} values", sample.len()))
}

/// UCI HAPT `labels.txt` (experiment, user, activity, start, end).
pub fn hapt_labels(data: &[u8]) -> Outcome {
    let segments = hapt::parse_labels(data, FILE).map_err(data_err)?;
    Ok(format!("{} segments", segments.len()))
}

/// One UCI HAPT raw signal file (`acc_exp01_user01.txt`: `x y z` lines).
pub fn hapt_signal(data: &[u8]) -> Outcome {
    let values = hapt::parse_signal(data, FILE).map_err(data_err)?;
    Ok(format!("{} values", values.len()))
}

/// A tabular CSV with columns `subject,label,t,ax,ay` (`--domain-col subject --label-col label
/// --time-col t --channels ax,ay --window-length 4`), parsed and windowed.
pub fn tabular_csv(data: &[u8]) -> Outcome {
    let opts = tabular::TabularOptions {
        domain_col: "subject".into(),
        label_col: "label".into(),
        channels: vec!["ax".into(), "ay".into()],
        time_col: Some("t".into()),
        group_col: None,
        window: WindowSpec {
            length: 4,
            stride: 4,
            label: LabelRule::Last,
            reference_bounds: false,
        },
        sample_rate_hz: None,
        zscore: true,
    };
    let df = tabular::parse_csv(data, FILE, b',', &opts).map_err(data_err)?;
    let (ds, _) = tabular::load_frame(&df, FILE, true, &opts).map_err(data_err)?;
    Ok(summary(&ds))
}

/// An IDX file: images when the magic says 3 dimensions, labels otherwise.
pub fn idx_file(data: &[u8]) -> Outcome {
    if data.get(3) == Some(&3) {
        let images = idx::parse_images(data, FILE).map_err(|e| e.to_string())?;
        Ok(format!(
            "{} images of {}x{}",
            images.n, images.rows, images.cols
        ))
    } else {
        let labels = idx::parse_labels(data, FILE).map_err(|e| e.to_string())?;
        Ok(format!("{} labels", labels.len()))
    }
}

/// A CIFAR-10 binary batch (`data_batch_1.bin`: records of 1 label + 3072 pixels).
pub fn cifar_batch(data: &[u8]) -> Outcome {
    let (pixels, labels) = cifar::parse_batch(data, FILE).map_err(|e| e.to_string())?;
    Ok(format!("{} images, {} bytes", labels.len(), pixels.len()))
}

/// scikit-learn's `digits.csv` (64 pixel values 0..16 and the class, a row).
pub fn digits_csv(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|e| format!("{FILE}: not UTF-8: {e}"))?;
    let set = digits::parse_digits_csv(text, FILE).map_err(|e| e.to_string())?;
    Ok(format!("{} images", set.labels.len()))
}

/// A sweep spec (TOML), parsed and expanded into jobs as `codats sweep plan` does, and its
/// `[slurm]` settings checked as `codats sweep slurm` does; every dataset is taken to have
/// domains 0..9, so no data is read.
pub fn sweep_spec(data: &[u8]) -> Outcome {
    use crate::sweep::{expand, spec};
    let text = std::str::from_utf8(data).map_err(|e| format!("{FILE}: not UTF-8: {e}"))?;
    let src = spec::Source {
        file: FILE.into(),
        text,
    };
    let raw = spec::parse_raw(&src).map_err(|e| e.to_string())?;
    let mut ids = |_: DatasetName, _: Option<&Path>| Ok((0..10).collect());
    let plan = expand::expand(&src, &raw, None, &mut ids).map_err(|e| e.to_string())?;
    let none = crate::sweep::spec::SlurmSettings::default();
    crate::sweep::slurm::SlurmOptions::resolve(&plan.slurm, &none, 1000)
        .map_err(|e| e.to_string())?;
    Ok(format!("{} jobs", plan.jobs.len()))
}

/// A zip archive (first byte even) or a tar stream (first byte odd; the rest of the bytes) with
/// hostile member names and headers: lists and reads every member as `datasets verify` and the
/// folder loaders do. Archives are streamed and never extracted, so a member name never becomes a
/// path on disk; the listed names never start with `/`.
pub fn archive_members(data: &[u8]) -> Outcome {
    use crate::data::source::{drain_tar, drain_zip, zip_file_names};
    let path = Path::new(FILE);
    let mut drain = |r: &mut dyn std::io::Read, name: &str| -> Result<u64, DataError> {
        let mut sink = Vec::new();
        std::io::copy(&mut std::io::Read::take(r, 1 << 24), &mut sink)
            .map(|n| n as u64)
            .map_err(|e| DataError::CorruptMember {
                archive: path.to_path_buf(),
                member: name.to_string(),
                reason: e.to_string(),
            })
    };
    let names = match data.split_first() {
        Some((b, rest)) if b % 2 == 1 => drain_tar(rest, path, &mut drain).map_err(data_err)?.0,
        _ => {
            let mut zip = zip::ZipArchive::new(Cursor::new(data))
                .map_err(|e| format!("{FILE}: not a zip archive: {e}"))?;
            let listed = zip_file_names(&zip, path).map_err(data_err)?;
            drain_zip(&mut zip, path, &mut drain).map_err(data_err)?;
            listed
        }
    };
    assert!(
        names.iter().all(|n| !n.starts_with('/')),
        "a member path starts with /: {names:?}"
    );
    Ok(format!("{} members", names.len()))
}
