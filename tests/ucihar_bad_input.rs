//! UCI HAR loader on small fixtures in the published format: exact values, then one exact error per bad input.

// Values are written as published (8 significant digits), more than f32 holds.
#![allow(clippy::excessive_precision)]

mod common;

use std::path::Path;

use codats::data::spec::DatasetSpec;
use codats::data::ucihar::{self, load, verify_archive};
use codats::data::DataError;
use common::*;

const BODY_ACC_X_TRAIN: &str = "train/Inertial Signals/body_acc_x_train.txt";
const TOTAL_ACC_Z_TEST: &str = "test/Inertial Signals/total_acc_z_test.txt";
const Y_TRAIN: &str = "train/y_train.txt";
const SUBJECT_TEST: &str = "test/subject_test.txt";

/// Path of a member in the extracted fixture folder, as error messages print it.
fn member_path(dir: &Path, member: &str) -> String {
    dir.join("UCI HAR Dataset")
        .join(member)
        .display()
        .to_string()
}

/// Loads a fixture folder built from `files` and returns the error message.
fn folder_error(name: &str, files: &[(String, String)]) -> (TempDir, String) {
    let tmp = TempDir::new(name);
    write_folder(tmp.path(), files);
    let err = load(tmp.path()).expect_err("bad input must fail");
    (tmp, err.to_string())
}

#[test]
fn fixture_format_is_the_published_one() {
    assert_eq!(fmt_e3(1.808515e-4), " 1.8085150e-004");
    assert_eq!(fmt_e3(-0.1232167), "-1.2321670e-001");
    let line = signal_text(&[window(1, 1, 0)], 0);
    assert_eq!(line.len(), 128 * 16 + 2);
    let body = line.strip_suffix("\r\n").expect("CR LF");
    for field in body.as_bytes().chunks(16) {
        let field = std::str::from_utf8(field).unwrap();
        assert!(field.starts_with(' '), "{field:?}");
        let (_, exp) = field.rsplit_once('e').expect("exponent");
        assert!(
            exp.len() == 4 && (exp.starts_with('-') || exp.starts_with('+')),
            "{field:?}"
        );
    }
}

#[test]
fn folder_fixture_parses_to_exact_values() {
    let fixture = small_fixture();
    let tmp = TempDir::new("folder-values");
    write_folder(tmp.path(), &fixture_files(&fixture));
    let ds = load(tmp.path()).expect("fixture loads");

    assert_eq!(ds.name, "ucihar");
    assert_eq!((ds.channels, ds.length, ds.zscore), (9, 128, false));
    assert_eq!(ds.class_names[0], "WALKING");
    assert_eq!(ds.class_names[5], "LAYING");
    assert_eq!(ds.domain_ids(), [1, 2, 3]);
    assert_eq!(ds.n_windows(), 5);
    // Labels 1..6 become 0..5; subject 3 has its train window before its test window.
    assert_eq!(ds.domain(1).unwrap().y, [0, 5]);
    assert_eq!(ds.domain(2).unwrap().y, [3]);
    assert_eq!(ds.domain(3).unwrap().y, [1, 4]);

    let expect = |d: u32, windows: &[&Window]| {
        let got = &ds.domain(d).unwrap().x;
        let want: Vec<f32> = windows
            .iter()
            .flat_map(|w| w.values.iter().flatten().map(|&v| expected_f32(v)))
            .collect();
        assert_eq!(got.len(), windows.len() * 9 * 128);
        assert!(
            got.iter()
                .map(|v| v.to_bits())
                .eq(want.iter().map(|v| v.to_bits())),
            "domain {d} values"
        );
    };
    expect(1, &[&fixture.train[0], &fixture.train[1]]);
    expect(2, &[&fixture.test[0]]);
    expect(3, &[&fixture.train[2], &fixture.test[1]]);

    // Spot checks against literals: [n, channel, t] layout.
    let x = &ds.domain(1).unwrap().x;
    let w0 = &fixture.train[0];
    assert_eq!(x[0], expected_f32(w0.values[0][0]));
    assert_eq!(x[5 * 128 + 7], expected_f32(w0.values[5][7]));
    assert_eq!(
        x[9 * 128 + 3 * 128 + 1],
        expected_f32(fixture.train[1].values[3][1])
    );
}

#[test]
fn literal_values_in_the_published_format() {
    // Window 0 of subject 1 starts with known tokens in body_acc_x.
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, BODY_ACC_X_TRAIN, |t| {
        let rest = &t[3 * 16..];
        format!("  1.8085150e-004 -1.2321670e-001  1.0128170e+000{rest}")
    });
    let tmp = TempDir::new("literals");
    write_folder(tmp.path(), &files);
    let ds = load(tmp.path()).expect("loads");
    let x = &ds.domain(1).unwrap().x;
    assert_eq!(&x[..3], &[1.808515e-4_f32, -0.1232167, 1.012817]);
}

#[test]
fn zip_fixture_equals_folder_fixture() {
    let files = fixture_files(&small_fixture());
    let a = TempDir::new("eq-folder");
    write_folder(a.path(), &files);
    let b = TempDir::new("eq-zip");
    let zip = write_zip(b.path(), &files, false);
    let from_folder = load(a.path()).expect("folder loads");
    let from_zip = load(b.path()).expect("zip loads");
    assert_same(&from_folder, &from_zip);
    // The archive path itself and the extracted root folder itself are accepted too.
    assert_same(&from_folder, &load(&zip).expect("zip path loads"));
    assert_same(
        &from_folder,
        &load(&a.path().join("UCI HAR Dataset")).expect("root folder loads"),
    );
}

#[test]
fn folder_is_preferred_over_archive() {
    let files = fixture_files(&small_fixture());
    let tmp = TempDir::new("prefer-folder");
    write_folder(tmp.path(), &files);
    // A zip holding a different dataset (one test window dropped) sits next to the folder.
    let mut other = files.clone();
    for (path, text) in other.iter_mut() {
        if path.starts_with("test/") {
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            lines.pop();
            *text = lines.concat();
        }
    }
    write_zip(tmp.path(), &other, false);
    let ds = load(tmp.path()).expect("loads");
    assert_eq!(ds.n_windows(), 5);
    assert_eq!(
        ucihar::find(tmp.path(), &DatasetSpec::ucihar().unwrap()).unwrap(),
        ucihar::Source::Folder(tmp.path().join("UCI HAR Dataset"))
    );
}

#[test]
fn line_with_127_values() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, BODY_ACC_X_TRAIN, |t| {
        // Drop the last field of line 2.
        let lines: Vec<&str> = t.split_inclusive("\r\n").collect();
        let short = format!("{}\r\n", &lines[1][..127 * 16]);
        [lines[0], &short, lines[2]].concat()
    });
    let (tmp, msg) = folder_error("127-values", &files);
    assert_eq!(
        msg,
        format!(
            "{}: line 2: expected 128 values, found 127",
            member_path(tmp.path(), BODY_ACC_X_TRAIN)
        )
    );
}

#[test]
fn line_with_129_values() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, TOTAL_ACC_Z_TEST, |t| {
        t.replacen("\r\n", "  1.0000000e+000\r\n", 1)
    });
    let (tmp, msg) = folder_error("129-values", &files);
    assert_eq!(
        msg,
        format!(
            "{}: line 1: expected 128 values, found 129",
            member_path(tmp.path(), TOTAL_ACC_Z_TEST)
        )
    );
}

#[test]
fn token_abc() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, BODY_ACC_X_TRAIN, |t| {
        let at = 2050 * 2 + 5 * 16; // line 3, field 6
        format!("{}{:>16}{}", &t[..at], "abc", &t[at + 16..])
    });
    let (tmp, msg) = folder_error("abc", &files);
    assert_eq!(
        msg,
        format!(
            "{}: line 3: value \"abc\" is not a number",
            member_path(tmp.path(), BODY_ACC_X_TRAIN)
        )
    );
}

#[test]
fn token_nan() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, TOTAL_ACC_Z_TEST, |t| {
        let at = 2050 + 127 * 16; // line 2, last field
        format!("{}{:>16}{}", &t[..at], "NaN", &t[at + 16..])
    });
    let (tmp, msg) = folder_error("nan", &files);
    assert_eq!(
        msg,
        format!(
            "{}: line 2: non-finite value NaN",
            member_path(tmp.path(), TOTAL_ACC_Z_TEST)
        )
    );
}

#[test]
fn label_7() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, Y_TRAIN, |_| "1\n7\n2\n".into());
    let (tmp, msg) = folder_error("label-7", &files);
    assert_eq!(
        msg,
        format!(
            "{}: line 2: label 7 outside 1..6",
            member_path(tmp.path(), Y_TRAIN)
        )
    );
}

#[test]
fn label_0() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, Y_TRAIN, |_| "0\n6\n2\n".into());
    let (tmp, msg) = folder_error("label-0", &files);
    assert_eq!(
        msg,
        format!(
            "{}: line 1: label 0 outside 1..6",
            member_path(tmp.path(), Y_TRAIN)
        )
    );
}

#[test]
fn subject_zero_and_negative() {
    for (bad, value) in [("2\n0\n", "0"), ("-4\n3\n", "-4")] {
        let mut files = fixture_files(&small_fixture());
        replace(&mut files, SUBJECT_TEST, |_| bad.into());
        let (tmp, msg) = folder_error("subject-0", &files);
        let line = if value == "0" { 2 } else { 1 };
        assert_eq!(
            msg,
            format!(
                "{}: line {line}: subject {value} outside 1..30",
                member_path(tmp.path(), SUBJECT_TEST)
            )
        );
    }
}

#[test]
fn y_train_one_line_short() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, Y_TRAIN, |_| "1\n6\n".into());
    let (tmp, msg) = folder_error("y-short", &files);
    assert_eq!(
        msg,
        format!(
            "{}: 2 lines, but {} has 3; both must have one line per window",
            member_path(tmp.path(), Y_TRAIN),
            member_path(tmp.path(), BODY_ACC_X_TRAIN)
        )
    );
}

#[test]
fn signal_file_one_window_short() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, TOTAL_ACC_Z_TEST, |t| t[..2050].to_string());
    let (tmp, msg) = folder_error("signal-short", &files);
    assert_eq!(
        msg,
        format!(
            "{}: 1 lines, but {} has 2; both must have one line per window",
            member_path(tmp.path(), TOTAL_ACC_Z_TEST),
            member_path(tmp.path(), "test/Inertial Signals/body_acc_x_test.txt")
        )
    );
}

#[test]
fn missing_member_file_in_folder() {
    let files: Vec<_> = fixture_files(&small_fixture())
        .into_iter()
        .filter(|(p, _)| p != SUBJECT_TEST)
        .collect();
    let (tmp, msg) = folder_error("missing-file", &files);
    assert!(
        msg.starts_with(&format!("{}: ", member_path(tmp.path(), SUBJECT_TEST))),
        "{msg}"
    );
}

#[test]
fn missing_archive() {
    let tmp = TempDir::new("missing");
    let err = load(tmp.path()).expect_err("nothing there");
    assert!(matches!(err, DataError::ArchiveNotFound { .. }));
    let url = DatasetSpec::ucihar().unwrap().effective_url();
    assert_eq!(
        err.to_string(),
        format!(
            "UCI HAR archive not found: expected {} (or the extracted folder {}/). \
             Get it with `codats datasets download ucihar`, or download {url} yourself and put it there.",
            tmp.path().join("UCI HAR Dataset.zip").display(),
            tmp.path().join("UCI HAR Dataset").display(),
        )
    );
    // A folder that does not exist gives the same kind of message.
    let err = load(&tmp.path().join("nope")).expect_err("nothing there");
    assert!(
        err.to_string().contains("nope/UCI HAR Dataset.zip"),
        "{err}"
    );
}

#[test]
fn bad_token_inside_zip_names_member_and_archive() {
    let mut files = fixture_files(&small_fixture());
    replace(&mut files, BODY_ACC_X_TRAIN, |t| {
        format!("{:>16}{}", "abc", &t[16..])
    });
    let tmp = TempDir::new("zip-abc");
    let zip = write_zip(tmp.path(), &files, false);
    let err = load(tmp.path()).expect_err("bad token");
    assert_eq!(
        err.to_string(),
        format!(
            "UCI HAR Dataset/{BODY_ACC_X_TRAIN} in {}: line 1: value \"abc\" is not a number",
            zip.display()
        )
    );
}

#[test]
fn truncated_zip() {
    let files = fixture_files(&small_fixture());
    let tmp = TempDir::new("truncated");
    let bytes = zip_bytes(&files, false);
    let zip = tmp.path().join("UCI HAR Dataset.zip");
    std::fs::write(&zip, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(tmp.path()).expect_err("truncated");
    assert!(matches!(err, DataError::CorruptArchive { .. }), "{err:?}");
    let prefix = format!(
        "{}: not a readable zip archive (truncated or corrupt): ",
        zip.display()
    );
    assert!(err.to_string().starts_with(&prefix), "{err}");
    let err = verify_archive(&zip, &DatasetSpec::ucihar().unwrap()).expect_err("truncated");
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

/// The fixture zip stored uncompressed, with one digit of `y_train.txt` changed after the CRC was written.
fn corrupted_zip(files: &[(String, String)]) -> (Vec<u8>, u32, u32) {
    let mut bytes = zip_bytes(files, true);
    let y = files.iter().find(|(p, _)| p == Y_TRAIN).unwrap().1.clone();
    assert_eq!(y, "1\n6\n2\n");
    let at = bytes
        .windows(y.len())
        .position(|w| w == y.as_bytes())
        .expect("stored member data");
    bytes[at + 2] = b'5'; // "6" -> "5": still a valid label
    let good = crc32fast::hash(y.as_bytes());
    let bad = crc32fast::hash(b"1\n5\n2\n");
    (bytes, good, bad)
}

#[test]
fn zip_member_with_crc_mismatch() {
    let files = fixture_files(&small_fixture());
    let (bytes, good, bad) = corrupted_zip(&files);
    let tmp = TempDir::new("crc");
    let zip = tmp.path().join("UCI HAR Dataset.zip");
    std::fs::write(&zip, bytes).unwrap();
    let want = format!(
        "{}: member \"UCI HAR Dataset/{Y_TRAIN}\" fails its CRC-32 check \
         (expected {good:08x}, computed {bad:08x}): the archive is corrupt",
        zip.display()
    );
    let err = load(tmp.path()).expect_err("crc mismatch");
    assert!(matches!(err, DataError::CrcMismatch { .. }), "{err:?}");
    assert_eq!(err.to_string(), want);

    // verify_archive, with a spec whose sizes are the fixture's, finds the same problem.
    let spec = fixture_spec(&files);
    let err = verify_archive(&zip, &spec).expect_err("crc mismatch");
    assert_eq!(err.to_string(), want);
}

/// The UCI HAR spec with the fixture's byte sizes.
fn fixture_spec(files: &[(String, String)]) -> DatasetSpec {
    let mut spec = DatasetSpec::ucihar().unwrap();
    let size = |path: &str| files.iter().find(|(p, _)| p == path).unwrap().1.len() as u64;
    for split in &mut spec.splits {
        for m in split
            .signals
            .iter_mut()
            .chain([&mut split.labels, &mut split.subjects])
        {
            m.size = size(&m.path);
        }
    }
    spec
}

#[test]
fn verify_archive_checks_presence_sizes_and_crc() {
    let files = fixture_files(&small_fixture());
    let tmp = TempDir::new("verify");
    let zip = write_zip(tmp.path(), &files, false);
    let spec = fixture_spec(&files);
    verify_archive(&zip, &spec).expect("good fixture verifies");

    // Against the published sizes the fixture is wrong at its first member.
    let err = verify_archive(&zip, &DatasetSpec::ucihar().unwrap()).expect_err("sizes");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: member \"UCI HAR Dataset/{BODY_ACC_X_TRAIN}\" is {} bytes, expected 15071600",
            zip.display(),
            3 * 2050
        )
    );

    // A missing member.
    let without: Vec<_> = files
        .iter()
        .filter(|(p, _)| p != SUBJECT_TEST)
        .cloned()
        .collect();
    let zip = write_zip(tmp.path(), &without, false);
    let err = verify_archive(&zip, &spec).expect_err("missing member");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: member \"UCI HAR Dataset/{SUBJECT_TEST}\" is missing",
            zip.display()
        )
    );
    // Loading the same archive names the missing member too.
    let err = load(tmp.path()).expect_err("missing member");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: member \"UCI HAR Dataset/{SUBJECT_TEST}\" is missing",
            zip.display()
        )
    );
}

#[test]
fn not_a_zip_at_all() {
    let tmp = TempDir::new("not-zip");
    let zip = tmp.path().join("UCI HAR Dataset.zip");
    std::fs::write(&zip, "<html>404</html>").unwrap();
    let err = load(tmp.path()).expect_err("not a zip");
    assert!(matches!(err, DataError::CorruptArchive { .. }), "{err:?}");
}
