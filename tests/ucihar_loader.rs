//! UCI HAR loader on the real archive (`$CODATS_DATA_DIR/ucihar`, default `../shared/data/ucihar`).
//!
//! These tests fail, rather than skip, when the archive is absent.

// Values are written as published (8 significant digits), more than f32 holds.
#![allow(clippy::excessive_precision)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Instant;

use codats::data::spec::DatasetSpec;
use codats::data::ucihar::{load, verify_archive};
use codats::data::Dataset;
use common::*;

/// Windows per subject, from the archive's README.
const PER_SUBJECT: [(u32, usize); 30] = [
    (1, 347),
    (2, 302),
    (3, 341),
    (4, 317),
    (5, 302),
    (6, 325),
    (7, 308),
    (8, 281),
    (9, 288),
    (10, 294),
    (11, 316),
    (12, 320),
    (13, 327),
    (14, 323),
    (15, 328),
    (16, 366),
    (17, 368),
    (18, 364),
    (19, 360),
    (20, 354),
    (21, 408),
    (22, 321),
    (23, 372),
    (24, 381),
    (25, 409),
    (26, 392),
    (27, 376),
    (28, 382),
    (29, 344),
    (30, 383),
];

/// The real dataset, loaded once per test binary.
fn real() -> &'static Dataset {
    static DS: OnceLock<Dataset> = OnceLock::new();
    DS.get_or_init(|| {
        let dir = real_archive_dir();
        let start = Instant::now();
        let ds = load(&dir).unwrap_or_else(|e| panic!("loading the real archive: {e}"));
        eprintln!(
            "loaded {} windows from {} in {:.3} s",
            ds.n_windows(),
            dir.display(),
            start.elapsed().as_secs_f64()
        );
        ds
    })
}

/// Window `i` of a domain, `[channel][t]` flattened.
fn window(ds: &Dataset, id: u32, i: usize) -> &[f32] {
    let n = ds.channels * ds.length;
    &ds.domain(id).expect("domain").x[i * n..(i + 1) * n]
}

#[test]
fn real_archive_shape_and_counts() {
    let ds = real();
    assert_eq!(ds.name, "ucihar");
    assert_eq!((ds.channels, ds.length, ds.zscore), (9, 128, false));
    assert_eq!(
        ds.class_names,
        [
            "WALKING",
            "WALKING_UPSTAIRS",
            "WALKING_DOWNSTAIRS",
            "SITTING",
            "STANDING",
            "LAYING"
        ]
    );
    assert_eq!(ds.domains.len(), 30);
    assert_eq!(ds.domain_ids(), (1..=30).collect::<Vec<u32>>());
    assert_eq!(ds.n_windows(), 10299);
    for (id, n) in PER_SUBJECT {
        let d = ds.domain(id).expect("subject present");
        assert_eq!(d.len(), n, "windows of subject {id}");
        assert_eq!(d.x.len(), n * 9 * 128, "values of subject {id}");
    }
    assert_eq!(ds.domain(1).unwrap().len(), 347);
    assert_eq!(ds.domain(25).unwrap().len(), 409);
    assert_eq!(ds.domain(30).unwrap().len(), 383);

    let mut classes = [0usize; 6];
    for d in &ds.domains {
        for &y in &d.y {
            classes[y as usize] += 1;
        }
    }
    assert_eq!(classes, [1722, 1544, 1406, 1777, 1906, 1944]);
    assert!(ds.domains.iter().all(|d| d.x.iter().all(|v| v.is_finite())));
}

#[test]
fn first_train_window_matches_published_values() {
    // Train starts with subject 1; channels: body_acc 0..3, body_gyro 3..6, total_acc 6..9.
    let w = window(real(), 1, 0);
    let at = |c: usize, t: usize| w[c * 128 + t];
    assert_eq!(
        (at(6, 0), at(7, 0), at(8, 0)),
        (1.0128170, -0.1232167, 0.1029341)
    );
    assert_eq!(
        (at(3, 0), at(4, 0), at(5, 0)),
        (0.03019122, 0.06601362, 0.02285864)
    );
}

#[test]
fn first_test_window_matches_published_values() {
    // Test starts with subject 2 (a test-only subject), so its first window is the first test window.
    let w = window(real(), 2, 0);
    assert_eq!(&w[..3], &[1.1653150e-2, 1.3109090e-2, 1.1268850e-2]);
    assert_eq!(w[128], -2.9399040e-2); // body_acc_y
    assert_eq!(w[3 * 128], 4.3746370e-1); // body_gyro_x
    assert_eq!(w[4 * 128], 5.3134920e-1); // body_gyro_y
}

#[test]
fn windows_overlap_by_half_within_fragments() {
    // Consecutive windows of a recording share 64 samples (50 % overlap): true for most of subject 1.
    let ds = real();
    let n = ds.domain(1).unwrap().len();
    let overlapping = (1..n)
        .filter(|&i| {
            let (a, b) = (window(ds, 1, i - 1), window(ds, 1, i));
            (0..9).all(|c| a[c * 128 + 64..c * 128 + 128] == b[c * 128..c * 128 + 64])
        })
        .count();
    assert!(overlapping > n * 8 / 10, "{overlapping} of {n}");
}

#[test]
fn real_archive_verifies() {
    let dir = real_archive_dir();
    verify_archive(
        &dir.join("UCI HAR Dataset.zip"),
        &DatasetSpec::ucihar().unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn extracted_subset_of_real_archive_loads_identically() {
    // The first 40 lines of every member of the real archive, written as an extracted folder and as a
    // zip: both load to the same dataset, whose windows are the real dataset's first windows.
    const LINES: usize = 40;
    let spec = DatasetSpec::ucihar().unwrap();
    let bytes = std::fs::read(real_archive_dir().join("UCI HAR Dataset.zip")).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut files = Vec::new();
    for m in spec.members() {
        let mut text = String::new();
        zip.by_name(&spec.member_name(m))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let head: String = text.split_inclusive('\n').take(LINES).collect();
        files.push((m.path.clone(), head));
    }
    let a = TempDir::new("real-subset-folder");
    write_folder(a.path(), &files);
    let b = TempDir::new("real-subset-zip");
    write_zip(b.path(), &files, false);
    let from_folder = load(a.path()).expect("folder loads");
    let from_zip = load(b.path()).expect("zip loads");
    assert_same(&from_folder, &from_zip);
    assert_eq!(from_folder.n_windows(), 2 * LINES);

    let full = real();
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for d in &from_folder.domains {
        let f = full.domain(d.id).expect("subject in full dataset");
        assert_eq!(d.y[..], f.y[..d.len()], "labels of subject {}", d.id);
        assert_eq!(d.x[..], f.x[..d.x.len()], "windows of subject {}", d.id);
        seen.insert(d.id, d.len());
    }
    assert_eq!(seen.values().sum::<usize>(), 2 * LINES);
}
