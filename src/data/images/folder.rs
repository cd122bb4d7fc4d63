//! An image folder: one sub-folder per class (class ids = sorted folder names), PNG or JPEG files in each.
//!
//! Files and folders whose names start with `.` are skipped, as are plain files directly in the root;
//! every other file in a class folder must decode as an image (the format is guessed from its bytes).
//! Images are decoded in parallel; the first failing file in sorted order is the one reported.

use std::fs;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;
use rayon::prelude::*;

use super::{ImageError, ImageSet, Result};

/// Channels of the loaded images (config.toml's `[images] color`, `--color`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// One channel (luma).
    #[default]
    Gray,
    /// Three channels, red, green, blue planes.
    Rgb,
}

/// How images of different sizes are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizePolicy {
    /// Every image is resized to `width×height` (bilinear, the `image` crate's `Triangle` filter).
    Resize {
        /// Target width.
        width: u32,
        /// Target height.
        height: u32,
    },
    /// Every image must be `width×height`.
    Require {
        /// Required width.
        width: u32,
        /// Required height.
        height: u32,
    },
    /// Every image must have the size of the first one (in class, then file-name order).
    SameAsFirst,
}

impl ColorMode {
    /// The name on the command line and in config.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            ColorMode::Gray => "gray",
            ColorMode::Rgb => "rgb",
        }
    }

    /// Whether this is the default (grey), which config.toml leaves out.
    pub fn is_gray(&self) -> bool {
        *self == ColorMode::Gray
    }
}

/// Options of [`image_folder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderOptions {
    /// Size handling.
    pub size: SizePolicy,
    /// Channels.
    pub color: ColorMode,
}

/// The entries of `dir` (not starting with `.`), sorted by name, that pass `keep`.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let io_err = |source| ImageError::Io {
        file: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if !hidden && keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Decodes one file (format guessed from its bytes).
fn decode(path: &Path) -> Result<DynamicImage> {
    let file = || path.display().to_string();
    let reader = image::io::Reader::open(path).map_err(|source| ImageError::Io {
        file: file(),
        source,
    })?;
    let reader = reader
        .with_guessed_format()
        .map_err(|source| ImageError::Io {
            file: file(),
            source,
        })?;
    reader.decode().map_err(|e| ImageError::NotAnImage {
        file: file(),
        message: e.to_string(),
    })
}

/// The image's pixels as `C×H×W` bytes in the asked colour mode.
fn planar(img: &DynamicImage, color: ColorMode) -> Vec<u8> {
    match color {
        ColorMode::Gray => img.to_luma8().into_raw(),
        ColorMode::Rgb => {
            let rgb = img.to_rgb8().into_raw();
            let plane = rgb.len() / 3;
            let mut out = vec![0u8; rgb.len()];
            for (k, px) in rgb.chunks_exact(3).enumerate() {
                out[k] = px[0];
                out[plane + k] = px[1];
                out[2 * plane + k] = px[2];
            }
            out
        }
    }
}

/// Checks an image's size against the policy; `first` is the first image's (path, size).
fn check_size(
    path: &Path,
    img: &DynamicImage,
    size: SizePolicy,
    first: &(PathBuf, u32, u32),
) -> Result<()> {
    let (width, height) = (img.width(), img.height());
    let (expected_width, expected_height, reference) = match size {
        SizePolicy::Resize { .. } => return Ok(()),
        SizePolicy::Require { width, height } => (width, height, "the size asked for".to_string()),
        SizePolicy::SameAsFirst => (
            first.1,
            first.2,
            format!("the size of {}", first.0.display()),
        ),
    };
    if (width, height) == (expected_width, expected_height) {
        return Ok(());
    }
    let file = path.display().to_string();
    Err(ImageError::SizeMismatch {
        file,
        width,
        height,
        expected_width,
        expected_height,
        reference,
    })
}

/// The class folders of `dir` and, per class, its files; errors for no classes or an empty class.
fn list_files(dir: &Path) -> Result<(Vec<String>, Vec<(u32, PathBuf)>)> {
    let class_dirs = sorted_entries(dir, Path::is_dir)?;
    if class_dirs.is_empty() {
        return Err(ImageError::NoClasses {
            dir: dir.display().to_string(),
        });
    }
    let mut classes = Vec::new();
    let mut files = Vec::new();
    for (id, class_dir) in class_dirs.iter().enumerate() {
        let in_class = sorted_entries(class_dir, Path::is_file)?;
        if in_class.is_empty() {
            return Err(ImageError::EmptyClass {
                dir: class_dir.display().to_string(),
            });
        }
        classes.push(
            class_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        files.extend(in_class.into_iter().map(|f| (id as u32, f)));
    }
    Ok((classes, files))
}

/// Loads an image folder (one sub-folder per class) into an [`ImageSet`].
pub fn image_folder(dir: &Path, options: &FolderOptions) -> Result<ImageSet> {
    let (classes, files) = list_files(dir)?;
    let decoded: Vec<Result<DynamicImage>> =
        files.par_iter().map(|(_, path)| decode(path)).collect();
    let mut images = Vec::with_capacity(decoded.len());
    for (result, (_, path)) in decoded.into_iter().zip(&files) {
        images.push((path, result?));
    }
    let first = images
        .first()
        .map(|(p, i)| ((*p).clone(), i.width(), i.height()))
        .unwrap_or_default();
    for (path, img) in &images {
        check_size(path, img, options.size, &first)?;
    }
    let (width, height) = match options.size {
        SizePolicy::Resize { width, height } | SizePolicy::Require { width, height } => {
            (width, height)
        }
        SizePolicy::SameAsFirst => (first.1, first.2),
    };
    let channels = match options.color {
        ColorMode::Gray => 1,
        ColorMode::Rgb => 3,
    };
    let parts: Vec<Vec<u8>> = images
        .par_iter()
        .map(|(_, img)| match options.size {
            SizePolicy::Resize { .. } if (img.width(), img.height()) != (width, height) => planar(
                &img.resize_exact(width, height, FilterType::Triangle),
                options.color,
            ),
            _ => planar(img, options.color),
        })
        .collect();
    let labels = files.iter().map(|(id, _)| *id).collect();
    ImageSet::new(
        channels,
        height as usize,
        width as usize,
        parts.concat(),
        labels,
        classes,
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_util::temp_dir;
    use super::*;
    use image::{Rgb, RgbImage};

    /// Writes a `w×h` PNG whose pixel (x, y) is (x·10, y·10, 200).
    fn write_png(path: &Path, w: u32, h: u32) {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 200]));
        img.save(path).expect("write png");
    }

    fn rgb(size: SizePolicy) -> FolderOptions {
        FolderOptions {
            size,
            color: ColorMode::Rgb,
        }
    }

    /// Classes `cat` (2 images) and `dog` (1 image), all 4×3.
    fn two_classes(tag: &str) -> PathBuf {
        let dir = temp_dir(tag);
        for (class, names) in [("dog", &["a.png"][..]), ("cat", &["b.png", "a.png"][..])] {
            fs::create_dir(dir.join(class)).expect("mkdir");
            names
                .iter()
                .for_each(|n| write_png(&dir.join(class).join(n), 4, 3));
        }
        fs::write(dir.join("README.txt"), "ignored").expect("write");
        fs::write(dir.join("cat").join(".DS_Store"), "ignored").expect("write");
        dir
    }

    #[test]
    fn classes_are_sorted_folders_and_pixels_are_planar() {
        let dir = two_classes("folder-rt");
        let set = image_folder(&dir, &rgb(SizePolicy::SameAsFirst)).expect("loads");
        assert_eq!(set.classes, vec!["cat", "dog"]);
        assert_eq!(set.labels, vec![0, 0, 1]);
        assert_eq!((set.n, set.channels, set.height, set.width), (3, 3, 3, 4));
        let img = set.image(0).expect("in range");
        assert_eq!(&img[..4], &[0, 10, 20, 30]);
        assert_eq!(&img[12..16], &[0, 0, 0, 0]);
        assert_eq!(img[12 + 4], 10);
        assert!(img[24..].iter().all(|&b| b == 200));
        let gray = image_folder(
            &dir,
            &FolderOptions {
                size: SizePolicy::Require {
                    width: 4,
                    height: 3,
                },
                color: ColorMode::Gray,
            },
        );
        assert_eq!(gray.expect("loads").channels, 1);
    }

    #[test]
    fn resize_gives_one_size_and_mixed_sizes_without_it_fail() {
        let dir = two_classes("folder-mixed");
        let odd = dir.join("dog").join("b.png");
        write_png(&odd, 6, 5);
        let set = image_folder(
            &dir,
            &rgb(SizePolicy::Resize {
                width: 8,
                height: 8,
            }),
        )
        .expect("loads");
        assert_eq!(
            (set.n, set.height, set.width, set.pixels.len()),
            (4, 8, 8, 4 * 3 * 64)
        );
        let e = image_folder(&dir, &rgb(SizePolicy::SameAsFirst)).unwrap_err();
        let first = dir.join("cat").join("a.png");
        let want = format!(
            "{}: size 6x5, expected 4x3 (the size of {}); pass --resize WIDTHxHEIGHT to accept mixed sizes",
            odd.display(),
            first.display()
        );
        assert_eq!(e.to_string(), want);
        let e = image_folder(
            &dir,
            &rgb(SizePolicy::Require {
                width: 6,
                height: 5,
            }),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with(&format!(
            "{}: size 4x3, expected 6x5 (the size asked for)",
            first.display()
        )));
    }

    #[test]
    fn non_image_empty_class_and_no_classes_are_named() {
        let dir = two_classes("folder-bad");
        let bad = dir.join("dog").join("notes.txt");
        fs::write(&bad, "not an image").expect("write");
        let e = image_folder(&dir, &rgb(SizePolicy::SameAsFirst)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: not a readable image: ", bad.display())),
            "{e}"
        );
        fs::remove_file(&bad).expect("remove");
        fs::create_dir(dir.join("emu")).expect("mkdir");
        let e = image_folder(&dir, &rgb(SizePolicy::SameAsFirst)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: class folder holds no images",
                dir.join("emu").display()
            )
        );
        let empty = temp_dir("folder-none");
        let e = image_folder(&empty, &rgb(SizePolicy::SameAsFirst)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: no class sub-folders", empty.display())
        );
    }
}
