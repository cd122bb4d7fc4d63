//! MNIST's IDX files (gzipped or plain): `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
//!
//! Format (big-endian): images are magic `0x00000803`, u32 count, u32 rows, u32 cols, then
//! `count×rows×cols` u8 pixels row-major; labels are magic `0x00000801`, u32 count, then `count` u8
//! labels 0..9. A file is gunzipped when it starts with the gzip magic, whatever its name.

use std::path::{Path, PathBuf};

use super::{digit_classes, find_plain_or_gz, read_maybe_gz, ImageError, ImageSet, Result};

/// Magic number of an IDX file of u8 values in 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 values in 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images parsed from an IDX images file: `n` images of `rows×cols`, pixels row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// Pixels, `n×rows×cols`.
    pub pixels: Vec<u8>,
}

/// Big-endian u32 at `at` (the caller checked the length).
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the magic number and that the file holds exactly `header + body` bytes.
fn check_layout(
    bytes: &[u8],
    file: &str,
    magic: u32,
    header: usize,
    body: impl Fn(&[u8]) -> u64,
) -> Result<()> {
    let found = bytes.len() as u64;
    if bytes.len() < 4 {
        return Err(ImageError::Truncated {
            file: file.into(),
            expected: header as u64,
            found,
        });
    }
    let got = be_u32(bytes, 0);
    if got != magic {
        return Err(ImageError::BadMagic {
            file: file.into(),
            found: got,
            expected: magic,
        });
    }
    if bytes.len() < header {
        return Err(ImageError::Truncated {
            file: file.into(),
            expected: header as u64,
            found,
        });
    }
    let expected = (header as u64).saturating_add(body(bytes));
    if found < expected {
        return Err(ImageError::Truncated {
            file: file.into(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(ImageError::TrailingBytes {
            file: file.into(),
            expected,
            found,
        });
    }
    Ok(())
}

/// Parses the bytes of an (already decompressed) IDX images file; `file` names it in errors.
pub fn parse_images(bytes: &[u8], file: &str) -> Result<IdxImages> {
    // In u128: three u32 dimensions can overflow u64 (a hostile header); saturated, such a
    // size is simply more than any file holds.
    let dims = |b: &[u8]| {
        let n = be_u32(b, 4) as u128 * be_u32(b, 8) as u128 * be_u32(b, 12) as u128;
        n.min(u64::MAX as u128) as u64
    };
    check_layout(bytes, file, IMAGES_MAGIC, 16, dims)?;
    let (n, rows, cols) = (
        be_u32(bytes, 4) as usize,
        be_u32(bytes, 8) as usize,
        be_u32(bytes, 12) as usize,
    );
    Ok(IdxImages {
        n,
        rows,
        cols,
        pixels: bytes[16..].to_vec(),
    })
}

/// Parses the bytes of an (already decompressed) IDX labels file; labels above 9 are errors.
pub fn parse_labels(bytes: &[u8], file: &str) -> Result<Vec<u32>> {
    check_layout(bytes, file, LABELS_MAGIC, 8, |b| be_u32(b, 4) as u64)?;
    let labels = &bytes[8..];
    if let Some((record, &label)) = labels.iter().enumerate().find(|(_, &l)| l > 9) {
        return Err(ImageError::LabelOutOfRange {
            file: file.into(),
            record,
            label: label as u32,
            max: 9,
        });
    }
    Ok(labels.iter().map(|&l| l as u32).collect())
}

/// Reads and parses an IDX images file (gzipped or plain).
pub fn read_images(path: &Path) -> Result<IdxImages> {
    parse_images(&read_maybe_gz(path)?, &path.display().to_string())
}

/// Reads and parses an IDX labels file (gzipped or plain).
pub fn read_labels(path: &Path) -> Result<Vec<u32>> {
    parse_labels(&read_maybe_gz(path)?, &path.display().to_string())
}

/// Reads an images file and its labels file into one gray [`ImageSet`] with classes `"0"`..`"9"`.
pub fn read_pair(images_path: &Path, labels_path: &Path) -> Result<ImageSet> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    if labels.len() != images.n {
        return Err(ImageError::CountMismatch {
            images_file: images_path.display().to_string(),
            images: images.n,
            labels_file: labels_path.display().to_string(),
            labels: labels.len(),
        });
    }
    ImageSet::new(
        1,
        images.rows,
        images.cols,
        images.pixels,
        labels,
        digit_classes(),
    )
}

/// MNIST as found in one folder: the test set always, the training set when its images are there.
#[derive(Debug, Clone)]
pub struct MnistFiles {
    /// The folder read.
    pub dir: PathBuf,
    /// The 10 000 test images (`t10k-*`).
    pub test: ImageSet,
    /// The 60 000 training images, `None` when `train-images-idx3-ubyte(.gz)` is absent.
    pub train: Option<ImageSet>,
    /// The training labels when present (also when the training images are absent).
    pub train_labels: Option<Vec<u32>>,
}

impl MnistFiles {
    /// Whether the training images were found (when not, split [`MnistFiles::test`] instead).
    pub fn has_train_images(&self) -> bool {
        self.train.is_some()
    }
}

/// Finds and reads MNIST's files in `dir` (each plain or `.gz`); the test pair is required.
pub fn load_mnist(dir: &Path) -> Result<MnistFiles> {
    let need = |name: &str| {
        find_plain_or_gz(dir, name).ok_or_else(|| ImageError::MissingFile {
            dir: dir.display().to_string(),
            name: format!("{name}(.gz)"),
        })
    };
    let test = read_pair(
        &need("t10k-images-idx3-ubyte")?,
        &need("t10k-labels-idx1-ubyte")?,
    )?;
    let train_images = find_plain_or_gz(dir, "train-images-idx3-ubyte");
    let train_labels_path = find_plain_or_gz(dir, "train-labels-idx1-ubyte");
    let train = match &train_images {
        Some(images) => Some(read_pair(images, &need("train-labels-idx1-ubyte")?)?),
        None => None,
    };
    let train_labels = match (&train, &train_labels_path) {
        (Some(set), _) => Some(set.labels.clone()),
        (None, Some(path)) => Some(read_labels(path)?),
        (None, None) => None,
    };
    Ok(MnistFiles {
        dir: dir.to_path_buf(),
        test,
        train,
        train_labels,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{gzip, shared_data, temp_dir};
    use super::*;

    /// An IDX images file of `n` images `rows×cols`, pixel `(i, k)` = `(i * 7 + k) % 256`.
    fn images_bytes(n: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [IMAGES_MAGIC, n, rows, cols] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let len = (rows * cols) as usize;
        for i in 0..n as usize {
            b.extend((0..len).map(|k| ((i * 7 + k) % 256) as u8));
        }
        b
    }

    fn labels_bytes(labels: &[u8]) -> Vec<u8> {
        let mut b = LABELS_MAGIC.to_be_bytes().to_vec();
        b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    #[test]
    fn round_trip_of_written_images_and_labels() {
        let dir = temp_dir("idx-rt");
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte.gz"),
            gzip(&images_bytes(3, 2, 4)),
        )
        .expect("write");
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels_bytes(&[7, 0, 9]))
            .expect("write");
        let m = load_mnist(&dir).expect("loads");
        assert!(!m.has_train_images());
        assert!(m.train_labels.is_none());
        let t = &m.test;
        assert_eq!((t.n, t.channels, t.height, t.width), (3, 1, 2, 4));
        assert_eq!(t.labels, vec![7, 0, 9]);
        assert_eq!(t.image(2), Some(&[14u8, 15, 16, 17, 18, 19, 20, 21][..]));
        std::fs::write(dir.join("train-labels-idx1-ubyte"), labels_bytes(&[1, 2])).expect("write");
        assert_eq!(
            load_mnist(&dir).expect("loads").train_labels,
            Some(vec![1, 2])
        );
        std::fs::write(dir.join("train-images-idx3-ubyte"), images_bytes(2, 2, 4)).expect("write");
        let m = load_mnist(&dir).expect("loads");
        assert!(m.has_train_images());
        assert_eq!(m.train.map(|s| s.labels), Some(vec![1, 2]));
    }

    #[test]
    fn wrong_magic_names_file_and_magic() {
        let e = parse_images(&labels_bytes(&[1]), "x.idx").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.idx: magic number 0x00000801, expected 0x00000803"
        );
        let e = parse_labels(&images_bytes(1, 1, 1), "y.idx").unwrap_err();
        assert_eq!(
            e.to_string(),
            "y.idx: magic number 0x00000803, expected 0x00000801"
        );
    }

    #[test]
    fn truncated_and_overlong_files_name_expected_and_found_bytes() {
        let mut b = images_bytes(3, 2, 2);
        b.pop();
        let e = parse_images(&b, "img").unwrap_err();
        assert_eq!(e.to_string(), "img: truncated: expected 28 bytes, found 27");
        let e = parse_images(&b[..10], "img").unwrap_err();
        assert_eq!(e.to_string(), "img: truncated: expected 16 bytes, found 10");
        let mut l = labels_bytes(&[1, 2]);
        l.push(3);
        let e = parse_labels(&l, "lab").unwrap_err();
        assert_eq!(
            e.to_string(),
            "lab: 11 bytes, but the header accounts for 10: trailing data"
        );
    }

    #[test]
    fn label_above_nine_names_record() {
        let e = parse_labels(&labels_bytes(&[0, 9, 10]), "lab").unwrap_err();
        assert_eq!(
            e.to_string(),
            "lab: record 2: label 10 is out of range 0..=9"
        );
    }

    #[test]
    fn count_mismatch_and_missing_files_are_reported() {
        let dir = temp_dir("idx-bad");
        let e = load_mnist(&dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: t10k-images-idx3-ubyte(.gz) not found", dir.display())
        );
        let (img, lab) = (
            dir.join("t10k-images-idx3-ubyte"),
            dir.join("t10k-labels-idx1-ubyte"),
        );
        std::fs::write(&img, images_bytes(3, 1, 1)).expect("write");
        std::fs::write(&lab, labels_bytes(&[1, 2])).expect("write");
        let e = load_mnist(&dir).unwrap_err();
        let want = format!(
            "{}: 2 labels, but {} holds 3 images",
            lab.display(),
            img.display()
        );
        assert_eq!(e.to_string(), want);
    }

    #[test]
    fn real_mnist_test_files_load() {
        let Some(dir) = shared_data("mnist") else {
            return;
        };
        let m = load_mnist(&dir).expect("the shared MNIST files load");
        assert_eq!(
            (m.test.n, m.test.channels, m.test.height, m.test.width),
            (10_000, 1, 28, 28)
        );
        let want = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
        assert_eq!(m.test.class_counts(), want);
        assert_eq!(
            m.has_train_images(),
            find_plain_or_gz(&dir, "train-images-idx3-ubyte").is_some()
        );
        let train_labels = m.train_labels.expect("train labels are shared");
        let mut counts = [0usize; 10];
        train_labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(
            counts,
            [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        );
    }
}
