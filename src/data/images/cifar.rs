//! CIFAR-10, binary version: `data_batch_1.bin`..`data_batch_5.bin` and `test_batch.bin`.
//!
//! Each file is a run of 3 073-byte records: one label byte 0..9, then 3 072 pixel bytes, the 32×32
//! red plane, then green, then blue (rows top to bottom) — already the `C×H×W` order of an
//! [`ImageSet`]. Class names come from `batches.meta.txt` (one per line) when present.

use std::fs;
use std::path::{Path, PathBuf};

use super::{ImageError, ImageSet, Result};

/// Side of a CIFAR image.
pub const SIDE: usize = 32;
/// Pixel bytes of one record (3 planes of 32×32).
pub const PIXELS: usize = 3 * SIDE * SIDE;
/// Bytes of one record: label byte + pixels.
pub const RECORD: usize = 1 + PIXELS;
/// The training batch files, in the order they are concatenated.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class-names file.
pub const META_FILE: &str = "batches.meta.txt";
/// CIFAR-10's class names, used when `batches.meta.txt` is absent.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Splits the bytes of one batch file into pixels (`N×3×32×32`) and labels; `file` names it in errors.
pub fn parse_batch(bytes: &[u8], file: &str) -> Result<(Vec<u8>, Vec<u32>)> {
    if bytes.len() % RECORD != 0 {
        return Err(ImageError::RecordSize {
            file: file.into(),
            size: bytes.len() as u64,
            record_len: RECORD,
        });
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (record, chunk) in bytes.chunks_exact(RECORD).enumerate() {
        if chunk[0] > 9 {
            return Err(ImageError::LabelOutOfRange {
                file: file.into(),
                record,
                label: chunk[0] as u32,
                max: 9,
            });
        }
        labels.push(chunk[0] as u32);
        pixels.extend_from_slice(&chunk[1..]);
    }
    Ok((pixels, labels))
}

/// Reads the batch files at `paths` into one set, in that order, with these class names.
pub fn read_batches(paths: &[PathBuf], classes: Vec<String>) -> Result<ImageSet> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let bytes = fs::read(path).map_err(|source| ImageError::Io {
            file: path.display().to_string(),
            source,
        })?;
        let (p, l) = parse_batch(&bytes, &path.display().to_string())?;
        pixels.extend(p);
        labels.extend(l);
    }
    ImageSet::new(3, SIDE, SIDE, pixels, labels, classes)
}

/// The class names in `dir/batches.meta.txt` (non-empty lines, trimmed), else [`CLASSES`].
pub fn read_classes(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(META_FILE);
    if !path.is_file() {
        return Ok(CLASSES.iter().map(|c| c.to_string()).collect());
    }
    let file = path.display().to_string();
    let text = fs::read_to_string(&path).map_err(|source| ImageError::Io {
        file: file.clone(),
        source,
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != CLASSES.len() {
        return Err(ImageError::ClassNames {
            file,
            found: names.len(),
            expected: CLASSES.len(),
        });
    }
    Ok(names)
}

/// CIFAR-10's 50 000 training and 10 000 test images.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    /// `data_batch_1..5.bin`, concatenated in order.
    pub train: ImageSet,
    /// `test_batch.bin`.
    pub test: ImageSet,
}

/// Reads CIFAR-10 from `dir`, or from `dir/cifar-10-batches-bin` (the archive's folder) when that exists.
pub fn load_cifar10(dir: &Path) -> Result<Cifar10> {
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let need = |name: &str| {
        let path = dir.join(name);
        match path.is_file() {
            true => Ok(path),
            false => Err(ImageError::MissingFile {
                dir: dir.display().to_string(),
                name: name.into(),
            }),
        }
    };
    let classes = read_classes(&dir)?;
    let train_paths = TRAIN_FILES
        .iter()
        .map(|f| need(f))
        .collect::<Result<Vec<_>>>()?;
    let train = read_batches(&train_paths, classes.clone())?;
    let test = read_batches(&[need(TEST_FILE)?], classes)?;
    Ok(Cifar10 { train, test })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::temp_dir;
    use super::*;

    /// One record: label, then pixel `k` = `(seed + k) % 251`.
    fn record(label: u8, seed: usize) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..PIXELS).map(|k| ((seed + k) % 251) as u8));
        r
    }

    fn write_all_batches(dir: &Path) {
        for (b, name) in TRAIN_FILES.iter().enumerate() {
            let bytes: Vec<u8> = (0..2)
                .flat_map(|i| record((b * 2 + i) as u8 % 10, b * 2 + i))
                .collect();
            fs::write(dir.join(name), bytes).expect("write");
        }
        fs::write(
            dir.join(TEST_FILE),
            [record(3, 100), record(9, 101), record(0, 102)].concat(),
        )
        .expect("write");
    }

    #[test]
    fn round_trip_of_written_batches() {
        let dir = temp_dir("cifar-rt");
        write_all_batches(&dir);
        let c = load_cifar10(&dir).expect("loads");
        assert_eq!(
            (c.train.n, c.train.channels, c.train.height, c.train.width),
            (10, 3, 32, 32)
        );
        assert_eq!(c.train.labels, (0..10).collect::<Vec<u32>>());
        assert_eq!(c.test.labels, vec![3, 9, 0]);
        assert_eq!(c.train.classes[9], "truck");
        let img = c.test.image(1).expect("in range");
        assert_eq!(img, &record(9, 101)[1..]);
        // Green plane starts at 1 024: pixel (row 0, col 0) of G.
        assert_eq!(img[SIDE * SIDE], ((101 + 1024) % 251) as u8);
    }

    #[test]
    fn class_names_come_from_meta_file_when_present() {
        let dir = temp_dir("cifar-meta");
        write_all_batches(&dir);
        let names: String = (0..10).map(|i| format!("c{i}\n")).collect();
        fs::write(dir.join(META_FILE), format!("{names}\n")).expect("write");
        assert_eq!(load_cifar10(&dir).expect("loads").test.classes[3], "c3");
        fs::write(dir.join(META_FILE), "a\nb\n").expect("write");
        let e = load_cifar10(&dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: 2 class names, expected 10",
                dir.join(META_FILE).display()
            )
        );
    }

    #[test]
    fn size_not_a_multiple_of_the_record_names_file_and_size() {
        let mut bytes = record(1, 0);
        bytes.push(0);
        let e = parse_batch(&bytes, "data_batch_1.bin").unwrap_err();
        assert_eq!(
            e.to_string(),
            "data_batch_1.bin: size 3074 bytes is not a multiple of the 3073-byte record"
        );
    }

    #[test]
    fn label_above_nine_names_file_and_record() {
        let bytes = [record(1, 0), record(2, 1), record(10, 2)].concat();
        let e = parse_batch(&bytes, "test_batch.bin").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test_batch.bin: record 2: label 10 is out of range 0..=9"
        );
    }

    #[test]
    fn missing_batch_is_named() {
        let dir = temp_dir("cifar-missing");
        write_all_batches(&dir);
        fs::remove_file(dir.join("data_batch_4.bin")).expect("remove");
        let e = load_cifar10(&dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: data_batch_4.bin not found", dir.display())
        );
    }
}
