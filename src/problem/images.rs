//! An image semi-supervised problem on the trainer's domain layout: the labelled pool is the one
//! source domain (id 1) and the unlabelled pool the target (id 0), whose validation and test
//! splits are held-out images. Labels of the unlabelled pool exist (the datasets are labelled)
//! but, as for a DA target, the trainer never hands them to a method.
//!
//! How a run's images are chosen, all seeded and saved as `pools.json`:
//! 1. training set and test set: the published split, else a stratified split of the one set
//!    (`test_fraction` of each class held out, seed `split_seed`);
//! 2. `valid_size` images of the training set (stratified, seed `split_seed`) are held out for
//!    the oracle `best_target` rule; they are in neither pool;
//! 3. the labelled pool: `labels_per_class` images of each class of the rest (seed `seed`, as
//!    USB's `num_labels`); the unlabelled pool: all the others (or `unlabelled_limit` of them).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{PreparedDomain, Problem};
use crate::config::images::ImageOptions;
use crate::data::augment::{AugmentConfig, ImageShape};
use crate::data::images::catalog::{ImageData, ImageDataset};
use crate::data::images::pools::{stratified_split, Pools};
use crate::data::images::{ImageError, ImageSet};
use crate::data::split::{stratified_pick, DomainSplit};
use crate::seed::derive_seed;

/// What a run's images are, by index into the dataset's sets: saved as `pools.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePools {
    /// The dataset.
    pub dataset: String,
    /// Whether training pool and test come from the published split (else both index one set).
    pub published_split: bool,
    /// Seed of the labelled pool (the run seed).
    pub seed: u64,
    /// Seed of the test split and the validation hold-out.
    pub split_seed: u64,
    /// Labelled images per class.
    pub labels_per_class: usize,
    /// Labelled pool: indices into the training set.
    pub labelled: Vec<usize>,
    /// Unlabelled pool: indices into the training set.
    pub unlabelled: Vec<usize>,
    /// Oracle validation images: indices into the training set.
    pub valid: Vec<usize>,
    /// Held-out test images: indices into the test set.
    pub test: Vec<usize>,
}

/// What the trainer needs to know about an image problem besides its domains.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMeta {
    /// Image shape.
    pub shape: ImageShape,
    /// Weak/strong view settings (no flips for digits).
    pub augment: AugmentConfig,
    /// Per-channel mean of the training images (both pools), in [0, 1] pixel units.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the same images.
    pub std: Vec<f32>,
    /// Where every image came from.
    pub pools: ImagePools,
}

impl ImageMeta {
    /// Normalises images `N×C×H×W` in [0, 1] in place with the per-channel mean and std.
    pub fn normalise(&self, x: &mut [f32]) {
        let plane = self.shape.height * self.shape.width;
        for (k, v) in x.chunks_mut(plane).enumerate() {
            let c = k % self.shape.channels;
            let (m, s) = (self.mean[c], self.std[c]);
            v.iter_mut().for_each(|p| *p = (*p - m) / s);
        }
    }
}

const VALID_STREAM: u64 = 11;

fn mean_std(set: &ImageSet, idx: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let plane = set.height * set.width;
    let mut sum = vec![0f64; set.channels];
    let mut sq = vec![0f64; set.channels];
    for &i in idx {
        let img = set.image(i).expect("indices come from the set");
        for (c, px) in img.chunks(plane).enumerate() {
            for &p in px {
                let v = p as f64 / 255.0;
                sum[c] += v;
                sq[c] += v * v;
            }
        }
    }
    let n = (idx.len() * plane).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / n - m * m).max(0.0).sqrt().max(1e-3)) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

fn domain(id: u32, set: &ImageSet, parts: &[&[usize]]) -> Result<PreparedDomain, ImageError> {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for p in parts {
        x.extend(set.to_f32(p)?);
        y.extend(set.labels_of(p)?);
    }
    let n = y.len();
    Ok(PreparedDomain {
        id,
        x,
        y,
        split: DomainSplit {
            train: (0..n).collect(),
            valid: Vec::new(),
            test: Vec::new(),
        },
    })
}

/// The problem of one image run: pools drawn as the module documentation says.
pub fn image_problem(
    data: &ImageData,
    opts: &ImageOptions,
    seed: u64,
    split_seed: u64,
) -> Result<Problem, ImageError> {
    let (train_set, pool_idx, test_idx) = match &data.train {
        Some(train) => (train, (0..train.n).collect(), (0..data.test.n).collect()),
        None => {
            let split = stratified_split(
                &data.test.labels,
                data.test.n_classes(),
                opts.test_fraction,
                split_seed,
            )?;
            (&data.test, split.train, split.test)
        }
    };
    let test_set = &data.test;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(split_seed, VALID_STREAM));
    let n_valid = opts.valid_size.min(pool_idx.len() / 10);
    let (rest, valid) = stratified_pick(&pool_idx, &train_set.labels, n_valid, &mut rng);
    let rest_labels = train_set.labels_of(&rest)?;
    let drawn = Pools::draw(
        &rest_labels,
        &train_set.classes,
        opts.labels_per_class,
        opts.unlabelled_limit,
        seed,
    )?;
    let labelled: Vec<usize> = drawn.labelled.iter().map(|&i| rest[i]).collect();
    let unlabelled: Vec<usize> = drawn.unlabelled.iter().map(|&i| rest[i]).collect();
    if unlabelled.is_empty() {
        return Err(ImageError::EmptyUnlabelledPool {
            dataset: data.name.as_str().to_string(),
            labelled: labelled.len(),
        });
    }
    let mut both = labelled.clone();
    both.extend_from_slice(&unlabelled);
    let (mean, std) = mean_std(train_set, &both);

    let source = domain(1, train_set, &[&labelled])?;
    let mut target = domain(0, train_set, &[&unlabelled, &valid])?;
    let tail = domain(0, test_set, &[&test_idx])?;
    let (nu, nv, nt) = (unlabelled.len(), valid.len(), test_idx.len());
    target.x.extend(tail.x);
    target.y.extend(tail.y);
    target.split = DomainSplit {
        train: (0..nu).collect(),
        valid: (nu..nu + nv).collect(),
        test: (nu + nv..nu + nv + nt).collect(),
    };
    let shape = ImageShape {
        channels: train_set.channels,
        height: train_set.height,
        width: train_set.width,
    };
    let augment = match data.name {
        ImageDataset::Mnist | ImageDataset::Digits => AugmentConfig::digits(),
        ImageDataset::Cifar10 | ImageDataset::ImageFolder => AugmentConfig::default(),
    };
    Ok(Problem {
        dataset: data.name.as_str().to_string(),
        channels: shape.channels,
        length: shape.height * shape.width,
        class_names: train_set.classes.clone(),
        sources: vec![source],
        target,
        image: Some(ImageMeta {
            shape,
            augment,
            mean,
            std,
            pools: ImagePools {
                dataset: data.name.as_str().to_string(),
                published_split: data.train.is_some(),
                seed,
                split_seed,
                labels_per_class: opts.labels_per_class,
                labelled,
                unlabelled,
                valid,
                test: test_idx,
            },
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::images::ImageSet;

    fn toy(n_per_class: usize) -> ImageData {
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let n = 3 * n_per_class;
        let pixels: Vec<u8> = (0..n * 16).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        ImageData {
            name: ImageDataset::Digits,
            dir: "toy".into(),
            train: None,
            test: ImageSet::new(1, 4, 4, pixels, labels, classes).unwrap(),
            note: None,
        }
    }

    #[test]
    fn pools_valid_and_test_are_disjoint_balanced_and_cover_the_set() {
        let data = toy(40);
        let mut opts = ImageOptions::fixmatch(4);
        opts.valid_size = 9;
        let p = image_problem(&data, &opts, 5, 0).unwrap();
        let meta = p.image.as_ref().unwrap();
        let pools = &meta.pools;
        // 120 images: 24 test (20 %), 9 valid, 12 labelled (4 per class), 75 unlabelled.
        assert_eq!(
            (
                pools.test.len(),
                pools.valid.len(),
                pools.labelled.len(),
                pools.unlabelled.len()
            ),
            (24, 9, 12, 75)
        );
        let mut all: Vec<usize> = pools
            .test
            .iter()
            .chain(&pools.valid)
            .chain(&pools.labelled)
            .chain(&pools.unlabelled)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..120).collect::<Vec<_>>(), "disjoint and covering");
        let counts = |idx: &[usize]| {
            let mut c = [0usize; 3];
            idx.iter().for_each(|&i| c[i % 3] += 1);
            c
        };
        assert_eq!(counts(&pools.labelled), [4, 4, 4]);
        assert_eq!(counts(&pools.valid), [3, 3, 3]);
        // The domains hold exactly those images, labelled pool first.
        assert_eq!(
            p.sources[0].y,
            data.test.labels_of(&pools.labelled).unwrap()
        );
        assert_eq!(p.target.split.train.len(), 75);
        assert_eq!(p.target.split.valid, (75..84).collect::<Vec<_>>());
        assert_eq!(p.target.split.test, (84..108).collect::<Vec<_>>());
        // At most a tenth of the 96 training images is held out for validation.
        opts.valid_size = 500;
        let capped = image_problem(&data, &opts, 5, 0).unwrap();
        assert_eq!(capped.image.unwrap().pools.valid.len(), 9);
        assert_eq!((p.channels, p.length, p.window()), (1, 16, 16));
        // Same seeds, same pools; another run seed, another labelled pool, same test.
        let q = image_problem(&data, &opts, 5, 0).unwrap();
        assert_eq!(q.image.unwrap().pools, *pools);
        let r = image_problem(&data, &opts, 6, 0).unwrap().image.unwrap();
        assert_ne!(r.pools.labelled, pools.labelled);
        assert_eq!(r.pools.test, pools.test);
    }

    #[test]
    fn normalisation_uses_the_training_images_channel_statistics() {
        let data = toy(40);
        let p = image_problem(&data, &ImageOptions::fixmatch(4), 0, 0).unwrap();
        let meta = p.image.unwrap();
        let mut x: Vec<f32> = p.sources[0].x.clone();
        x.extend_from_slice(&p.target.x[..p.target.split.train.len() * 16]);
        meta.normalise(&mut x);
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }

    #[test]
    fn too_many_labels_per_class_is_a_one_line_error() {
        // 10 per class: 2 test, 8 in the training set (valid_size 0 here).
        let data = toy(10);
        let mut opts = ImageOptions::fixmatch(9);
        opts.valid_size = 0;
        let err = image_problem(&data, &opts, 0, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "class \"a\" holds 8 images, fewer than labels_per_class 9"
        );
        opts.labels_per_class = 8;
        let err = image_problem(&data, &opts, 0, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "digits: 24 labelled images leave no unlabelled ones; lower --labels-per-class"
        );
    }
}
