//! The image datasets by name (`mnist`, `digits`, `cifar10`, `image_folder`): where their files
//! are (the same `--data-dir` / `$CODATS_DATA_DIR/<folder>` / user-cache rules as the sensor
//! datasets), which loader reads them, and the text `codats datasets info` prints for them.

use std::path::{Path, PathBuf};

use super::folder::{ColorMode, FolderOptions, SizePolicy};
use super::pools::stratified_split;
use super::{cifar, digits, folder, idx, ImageSet, Result};
use crate::data::location;

/// An image dataset codats knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageDataset {
    /// MNIST, the original IDX files.
    Mnist,
    /// scikit-learn's 8×8 optical digits (`digits.csv.gz`).
    Digits,
    /// CIFAR-10, binary version.
    Cifar10,
    /// Your own images: one sub-folder of PNG/JPEG files per class.
    ImageFolder,
}

impl ImageDataset {
    /// Every image dataset, in listing order.
    pub const ALL: [ImageDataset; 4] = [
        ImageDataset::Mnist,
        ImageDataset::Digits,
        ImageDataset::Cifar10,
        ImageDataset::ImageFolder,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageDataset::Mnist => "mnist",
            ImageDataset::Digits => "digits",
            ImageDataset::Cifar10 => "cifar10",
            ImageDataset::ImageFolder => "image_folder",
        }
    }

    /// The dataset called `name`, if it is an image dataset.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The folder name under `$CODATS_DATA_DIR` (scikit-learn's digits sit in `sklearn_digits`).
    pub fn folder(self) -> &'static str {
        match self {
            ImageDataset::Digits => "sklearn_digits",
            other => other.as_str(),
        }
    }

    /// One line for `codats datasets list`.
    pub fn summary(self) -> &'static str {
        match self {
            ImageDataset::Mnist => {
                "MNIST handwritten digits, 28x28 grey, 10 classes (IDX files; 60 000 train + 10 000 test)"
            }
            ImageDataset::Digits => {
                "scikit-learn's 8x8 optical digits, 1 797 images, 10 classes (digits.csv.gz)"
            }
            ImageDataset::Cifar10 => {
                "CIFAR-10, 32x32 colour, 10 classes (binary batches; 50 000 train + 10 000 test)"
            }
            ImageDataset::ImageFolder => {
                "your own images: one sub-folder of PNG/JPEG files per class (--data-dir DIR)"
            }
        }
    }

    /// The folder holding its files.
    pub fn dir(self, data_dir: Option<&Path>) -> PathBuf {
        location::dataset_dir(self.folder(), data_dir)
    }
}

/// A loaded image dataset: its published train/test parts, or one set a run splits itself.
#[derive(Debug, Clone)]
pub struct ImageData {
    /// Which dataset.
    pub name: ImageDataset,
    /// The folder read.
    pub dir: PathBuf,
    /// The published training set (`None` when the dataset has none here, e.g. MNIST without
    /// its training images, or a dataset published as one set).
    pub train: Option<ImageSet>,
    /// The published test set, or the one set when there is no published split.
    pub test: ImageSet,
    /// What the user should know about how the files were read.
    pub note: Option<String>,
}

impl ImageData {
    /// The training pool and the held-out test set of a run: the published split when there is
    /// one, else a stratified split of the one set (`test_fraction` of each class held out,
    /// seeded by `seed`); also the indices of that split into the one set, when one was made.
    pub fn pool_and_test(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<(ImageSet, ImageSet, Option<super::pools::Split>)> {
        if let Some(train) = &self.train {
            return Ok((train.clone(), self.test.clone(), None));
        }
        let split = stratified_split(
            &self.test.labels,
            self.test.n_classes(),
            test_fraction,
            seed,
        )?;
        let pool = self.test.subset(&split.train)?;
        let test = self.test.subset(&split.test)?;
        Ok((pool, test, Some(split)))
    }

    /// The text of `codats datasets info` for it.
    pub fn describe(&self) -> String {
        let t = &self.test;
        let mut lines = vec![format!(
            "{}: {} classes, images {}x{}x{} (height x width x channels)",
            self.name.as_str(),
            t.n_classes(),
            t.height,
            t.width,
            t.channels
        )];
        lines.push(format!("source: {}", self.dir.display()));
        if let Some(note) = &self.note {
            lines.push(format!("note: {note}"));
        }
        let mut parts: Vec<(&str, &ImageSet)> = Vec::new();
        match &self.train {
            Some(train) => parts.extend([("train", train), ("test", t)]),
            None => parts.push(("images", t)),
        }
        let width = t
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(1)
            .clamp(5, 12);
        let header: Vec<String> = t
            .classes
            .iter()
            .map(|c| format!("{:>width$}", c.chars().take(width).collect::<String>()))
            .collect();
        lines.push(format!(
            "{:>7} {:>7}  {}",
            "part",
            "images",
            header.join(" ")
        ));
        for (name, set) in parts {
            let cells: Vec<String> = set
                .class_counts()
                .iter()
                .map(|n| format!("{n:>width$}"))
                .collect();
            lines.push(format!("{name:>7} {:>7}  {}", set.n, cells.join(" ")));
        }
        lines.join("\n") + "\n"
    }
}

/// Reads image dataset `name` from `dir` (`folder` options apply to `image_folder` only).
pub fn load(name: ImageDataset, dir: &Path, folder_opts: &FolderOptions) -> Result<ImageData> {
    let (train, test, note) = match name {
        ImageDataset::Mnist => {
            let files = idx::load_mnist(dir)?;
            let note = files.train.is_none().then(|| {
                "the 60 000 training images (train-images-idx3-ubyte) are absent: runs split the \
                 10 000 test images into a training pool and a held-out test (seeded, stratified, \
                 saved with the run)"
                    .to_string()
            });
            (files.train, files.test, note)
        }
        ImageDataset::Digits => (None, digits::load_digits(dir)?, None),
        ImageDataset::Cifar10 => {
            let c = cifar::load_cifar10(dir)?;
            (Some(c.train), c.test, None)
        }
        ImageDataset::ImageFolder => (None, folder::image_folder(dir, folder_opts)?, None),
    };
    Ok(ImageData {
        name,
        dir: dir.to_path_buf(),
        train,
        test,
        note,
    })
}

/// Whether `name`'s files are in `dir`, without parsing them (for `datasets list`).
pub fn found(name: ImageDataset, dir: &Path) -> bool {
    let has = |f: &str| dir.join(f).is_file() || dir.join(format!("{f}.gz")).is_file();
    match name {
        ImageDataset::Mnist => has("t10k-images-idx3-ubyte") && has("t10k-labels-idx1-ubyte"),
        ImageDataset::Digits => dir.join("digits.csv.gz").is_file() || dir.is_file(),
        ImageDataset::Cifar10 => {
            dir.join("test_batch.bin").is_file()
                || dir.join("cifar-10-batches-bin/test_batch.bin").is_file()
        }
        ImageDataset::ImageFolder => dir.is_dir(),
    }
}

/// `image_folder`'s default reading: images of one size (the first file's), grey.
pub fn default_folder_options() -> FolderOptions {
    FolderOptions {
        size: SizePolicy::SameAsFirst,
        color: ColorMode::Gray,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir() -> Option<PathBuf> {
        let d = std::env::var_os("CODATS_DATA_DIR").map(PathBuf::from);
        if d.is_none() {
            eprintln!("CODATS_DATA_DIR unset: skipping the real-data catalog test");
        }
        d
    }

    #[test]
    fn names_round_trip_and_digits_live_in_sklearn_digits() {
        for d in ImageDataset::ALL {
            assert_eq!(ImageDataset::parse(d.as_str()), Some(d));
        }
        assert_eq!(ImageDataset::parse("ucihar"), None);
        assert_eq!(ImageDataset::Digits.folder(), "sklearn_digits");
        let root = Path::new("/data");
        assert_eq!(
            ImageDataset::Digits.dir(Some(&root.join("x"))),
            root.join("x")
        );
    }

    #[test]
    fn mnist_without_training_images_is_split_into_pool_and_test() {
        let Some(root) = data_dir() else { return };
        let dir = ImageDataset::Mnist.dir(Some(&root.join("mnist")));
        assert!(found(ImageDataset::Mnist, &dir));
        let d = load(ImageDataset::Mnist, &dir, &default_folder_options()).unwrap();
        assert!(d.train.is_none() && d.note.is_some());
        let (pool, test, split) = d.pool_and_test(0.2, 0).unwrap();
        assert_eq!((pool.n, test.n), (8000, 2000));
        assert_eq!(split.unwrap().test.len(), 2000);
        let text = d.describe();
        assert!(
            text.starts_with("mnist: 10 classes, images 28x28x1 (height x width x channels)\n"),
            "{text}"
        );
        assert!(text.contains(" images   10000 "), "{text}");
        // The same seed gives the same split; another seed another.
        let (p2, _, _) = d.pool_and_test(0.2, 0).unwrap();
        let (p3, _, _) = d.pool_and_test(0.2, 1).unwrap();
        assert_eq!(pool.labels, p2.labels);
        assert_ne!(pool.pixels, p3.pixels);
    }

    #[test]
    fn digits_load_from_the_shared_folder() {
        let Some(root) = data_dir() else { return };
        let dir = root.join(ImageDataset::Digits.folder());
        let d = load(ImageDataset::Digits, &dir, &default_folder_options()).unwrap();
        assert_eq!((d.test.n, d.test.height, d.test.width), (1797, 8, 8));
        assert!(
            d.describe().contains(" images    1797 "),
            "{}",
            d.describe()
        );
    }
}
