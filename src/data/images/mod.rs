//! Image datasets held as `u8` arrays `N×C×H×W` (channel-planar), with one loader per published format
//! and the labelled/unlabelled pools of semi-supervised learning.
//!
//! Loaders: [`idx`] (MNIST IDX files), [`cifar`] (CIFAR-10 binary batches), [`digits`] (scikit-learn's
//! 8×8 digits CSV), [`folder`] (one sub-folder of PNG/JPEG files per class). [`pools`] picks the
//! labelled pool (`labels_per_class`, as USB's `num_labels`) and splits a set into train/test.
//! Each loader returns an [`ImageSet`]; [`ImageSet::to_f32`] turns a batch into the network's input.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

pub mod catalog;
pub mod cifar;
pub mod digits;
pub mod folder;
pub mod idx;
pub mod pools;

/// Everything that can go wrong while reading an image dataset or building its pools.
///
/// Messages are one line; `file` and `dir` fields hold the path as displayed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Opening or reading a file failed.
    #[error("{file}: {source}")]
    Io {
        /// The file or folder.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An IDX file whose magic number is not the one its kind needs.
    #[error("{file}: magic number 0x{found:08x}, expected 0x{expected:08x}")]
    BadMagic {
        /// The file.
        file: String,
        /// The magic number read (first four bytes, big-endian).
        found: u32,
        /// The magic number of this kind of file.
        expected: u32,
    },
    /// A file shorter than its header (or its record count) says.
    #[error("{file}: truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// The file (decompressed size when it is gzipped).
        file: String,
        /// Bytes the header needs.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A file longer than its header says.
    #[error("{file}: {found} bytes, but the header accounts for {expected}: trailing data")]
    TrailingBytes {
        /// The file.
        file: String,
        /// Bytes the header accounts for.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A labels file whose count differs from its images file.
    #[error("{labels_file}: {labels} labels, but {images_file} holds {images} images")]
    CountMismatch {
        /// The images file.
        images_file: String,
        /// Images it holds.
        images: usize,
        /// The labels file.
        labels_file: String,
        /// Labels it holds.
        labels: usize,
    },
    /// A label outside the dataset's classes.
    #[error("{file}: record {record}: label {label} is out of range 0..={max}")]
    LabelOutOfRange {
        /// The file (or `image set` for an in-memory set).
        file: String,
        /// 0-based record (image) index.
        record: usize,
        /// The label found.
        label: u32,
        /// The largest valid label.
        max: u32,
    },
    /// A file of fixed-size records whose size is not a whole number of records.
    #[error("{file}: size {size} bytes is not a multiple of the {record_len}-byte record")]
    RecordSize {
        /// The file.
        file: String,
        /// Its size in bytes.
        size: u64,
        /// The record size.
        record_len: usize,
    },
    /// A class-names file with the wrong number of names.
    #[error("{file}: {found} class names, expected {expected}")]
    ClassNames {
        /// The file.
        file: String,
        /// Non-empty lines found.
        found: usize,
        /// Classes the dataset has.
        expected: usize,
    },
    /// A CSV line with the wrong number of columns.
    #[error("{file}: line {line}: expected {expected} columns, found {found}")]
    ColumnCount {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Columns a line must hold.
        expected: usize,
        /// Columns found.
        found: usize,
    },
    /// A CSV value that is not a non-negative integer.
    #[error("{file}: line {line}, column {column}: value {token:?} is not an integer")]
    NotAnInteger {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// The offending token.
        token: String,
    },
    /// A CSV value outside its column's range.
    #[error("{file}: line {line}, column {column}: value {value} is out of range 0..={max}")]
    ValueOutOfRange {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// The value found.
        value: u64,
        /// The largest valid value.
        max: u64,
    },
    /// A file in a class folder that does not decode as an image.
    #[error("{file}: not a readable image: {message}")]
    NotAnImage {
        /// The file.
        file: String,
        /// The decoder's message.
        message: String,
    },
    /// An image folder without class sub-folders.
    #[error("{dir}: no class sub-folders")]
    NoClasses {
        /// The folder.
        dir: String,
    },
    /// A class folder without images.
    #[error("{dir}: class folder holds no images")]
    EmptyClass {
        /// The class folder.
        dir: String,
    },
    /// An image whose size differs from the required one (no resize was asked for).
    #[error("{file}: size {width}x{height}, expected {expected_width}x{expected_height} ({reference}); pass --resize WIDTHxHEIGHT to accept mixed sizes")]
    SizeMismatch {
        /// The first file whose size differs.
        file: String,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The width required.
        expected_width: u32,
        /// The height required.
        expected_height: u32,
        /// Where the required size comes from (`the size asked for`, or the first image's path).
        reference: String,
    },
    /// A required file of a dataset is absent.
    #[error("{dir}: {name} not found")]
    MissingFile {
        /// The folder searched.
        dir: String,
        /// The file name looked for (`name(.gz)` when either form is accepted).
        name: String,
    },
    /// A class with fewer images than `labels_per_class`.
    #[error("class {class:?} holds {count} images, fewer than labels_per_class {wanted}")]
    ClassTooSmall {
        /// The class name.
        class: String,
        /// Images of that class in the pool.
        count: usize,
        /// `labels_per_class`.
        wanted: usize,
    },
    /// Labelled pools that leave nothing for the unlabelled pool.
    #[error(
        "{dataset}: {labelled} labelled images leave no unlabelled ones; lower --labels-per-class"
    )]
    EmptyUnlabelledPool {
        /// The dataset.
        dataset: String,
        /// Size of the labelled pool.
        labelled: usize,
    },
    /// A test fraction outside (0, 1).
    #[error("test fraction {value} is not in the open interval (0, 1)")]
    BadFraction {
        /// The fraction given.
        value: f64,
    },
    /// An image set whose pixel buffer does not match its shape.
    #[error(
        "image set: {found} pixel bytes, expected {expected} for {n}x{channels}x{height}x{width}"
    )]
    PixelCount {
        /// Bytes in the buffer.
        found: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Images (labels).
        n: usize,
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
    /// An image index past the end of the set.
    #[error("image set: index {index} is out of range for {n} images")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// Images in the set.
        n: usize,
    },
    /// A pools file that is not valid JSON of the pools' shape.
    #[error("{file}: {message}")]
    Json {
        /// The file.
        file: String,
        /// serde_json's message.
        message: String,
    },
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, ImageError>;

/// A labelled image dataset: `n` images of one shape, pixels `u8` in `N×C×H×W` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Number of images (= `labels.len()`).
    pub n: usize,
    /// Channels per image (1 gray, 3 RGB).
    pub channels: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// Pixels, image after image, each image channel-planar (`C×H×W`, rows top to bottom).
    pub pixels: Vec<u8>,
    /// Class id per image, `0..classes.len()`.
    pub labels: Vec<u32>,
    /// Class names, index = class id.
    pub classes: Vec<String>,
}

impl ImageSet {
    /// Builds a set, checking that the buffer matches the shape and every label names a class.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        pixels: Vec<u8>,
        labels: Vec<u32>,
        classes: Vec<String>,
    ) -> Result<Self> {
        let n = labels.len();
        let expected = n * channels * height * width;
        if pixels.len() != expected {
            return Err(ImageError::PixelCount {
                found: pixels.len(),
                expected,
                n,
                channels,
                height,
                width,
            });
        }
        if let Some((record, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes.len())
        {
            let max = classes.len().saturating_sub(1) as u32;
            return Err(ImageError::LabelOutOfRange {
                file: "image set".into(),
                record,
                label,
                max,
            });
        }
        Ok(Self {
            n,
            channels,
            height,
            width,
            pixels,
            labels,
            classes,
        })
    }

    /// Bytes (= values) per image, `C×H×W`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Pixels of image `i` (`C×H×W`), or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let len = self.image_len();
        (i < self.n).then(|| &self.pixels[i * len..(i + 1) * len])
    }

    /// Images per class, index = class id.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The images at `indices` as f32 `N×C×H×W` scaled to [0, 1] (value / 255), in the order given.
    pub fn to_f32(&self, indices: &[usize]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            let img = self.image(i).ok_or(ImageError::IndexOutOfRange {
                index: i,
                n: self.n,
            })?;
            out.extend(img.iter().map(|&p| p as f32 / 255.0));
        }
        Ok(out)
    }

    /// The labels at `indices`, in the order given.
    pub fn labels_of(&self, indices: &[usize]) -> Result<Vec<u32>> {
        indices
            .iter()
            .map(|&i| {
                self.labels
                    .get(i)
                    .copied()
                    .ok_or(ImageError::IndexOutOfRange {
                        index: i,
                        n: self.n,
                    })
            })
            .collect()
    }

    /// A new set of the images at `indices` (same shape and classes), in the order given.
    pub fn subset(&self, indices: &[usize]) -> Result<ImageSet> {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i).ok_or(ImageError::IndexOutOfRange {
                index: i,
                n: self.n,
            })?);
        }
        let labels = self.labels_of(indices)?;
        ImageSet::new(
            self.channels,
            self.height,
            self.width,
            pixels,
            labels,
            self.classes.clone(),
        )
    }
}

/// The ten digit names `"0"`..`"9"`, the classes of MNIST and scikit-learn's digits.
pub fn digit_classes() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes (whatever its name).
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let io_err = |source| ImageError::Io {
        file: path.display().to_string(),
        source,
    };
    let raw = fs::read(path).map_err(io_err)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(io_err)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// `dir/name` or `dir/name.gz`, whichever exists (plain first).
pub(crate) fn find_plain_or_gz(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Helpers shared by this module's unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh empty folder under the system temp dir, unique per process and call.
    pub fn temp_dir(tag: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let k = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("codats-images-{tag}-{}-{k}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    /// `$CODATS_DATA_DIR/<name>`, or `None` (with a note on stderr) when the variable is unset.
    pub fn shared_data(name: &str) -> Option<PathBuf> {
        match std::env::var_os(crate::data::location::DATA_DIR_ENV) {
            Some(root) => Some(PathBuf::from(root).join(name)),
            None => {
                eprintln!(
                    "note: CODATS_DATA_DIR is unset; skipping the test on the real {name} files"
                );
                None
            }
        }
    }

    /// Gzips bytes (to write `.gz` test files).
    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).expect("gzip into memory");
        enc.finish().expect("gzip into memory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> ImageSet {
        let pixels = vec![0, 255, 51, 102, 10, 20, 30, 40];
        ImageSet::new(1, 2, 2, pixels, vec![1, 0], vec!["a".into(), "b".into()]).expect("valid set")
    }

    #[test]
    fn image_slices_and_f32_batch() {
        let set = two();
        assert_eq!(set.image(1), Some(&[10u8, 20, 30, 40][..]));
        assert_eq!(set.image(2), None);
        let x = set.to_f32(&[0]).expect("in range");
        assert_eq!(x, vec![0.0, 1.0, 0.2, 0.4]);
        assert_eq!(set.to_f32(&[1, 0]).expect("in range").len(), 8);
        assert_eq!(set.class_counts(), vec![1, 1]);
        let sub = set.subset(&[1]).expect("in range");
        assert_eq!(
            (sub.n, sub.labels.clone(), sub.pixels.clone()),
            (1, vec![0], vec![10, 20, 30, 40])
        );
    }

    #[test]
    fn bad_sets_and_indices_are_reported() {
        let e = ImageSet::new(1, 2, 2, vec![0; 7], vec![0, 0], vec!["a".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image set: 7 pixel bytes, expected 8 for 2x1x2x2"
        );
        let e = ImageSet::new(1, 1, 1, vec![0; 2], vec![0, 3], vec!["a".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image set: record 1: label 3 is out of range 0..=0"
        );
        let e = two().to_f32(&[0, 5]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image set: index 5 is out of range for 2 images"
        );
    }

    #[test]
    fn gz_and_plain_files_read_alike() {
        let dir = test_util::temp_dir("gz");
        std::fs::write(dir.join("a"), b"hello").expect("write");
        std::fs::write(dir.join("b.gz"), test_util::gzip(b"hello")).expect("write");
        assert_eq!(read_maybe_gz(&dir.join("a")).expect("read"), b"hello");
        assert_eq!(
            read_maybe_gz(&find_plain_or_gz(&dir, "b").expect("found")).expect("read"),
            b"hello"
        );
        assert!(find_plain_or_gz(&dir, "c").is_none());
    }
}
