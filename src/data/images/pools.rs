//! Labelled/unlabelled pools of semi-supervised learning (USB's `num_labels`), and a seeded stratified
//! train/test split of one set (MNIST without its training images: the test set is split instead).
//!
//! Pools are disjoint: unlike USB's default (`include_lb_to_ulb`), labelled images are not also in the
//! unlabelled pool; a trainer that wants them there can add them. Both are saved as `pools.json`.

use std::fs;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{ImageError, Result};
use crate::seed::derive_seed;

/// Purpose tags for [`derive_seed`], so each random choice has its own stream.
const LABELLED_STREAM: u64 = 1;
const UNLABELLED_STREAM: u64 = 2;
const SPLIT_STREAM: u64 = 3;

/// Labelled and unlabelled pools: indices into one training set, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pools {
    /// The seed the pools were drawn with.
    pub seed: u64,
    /// Labels kept per class.
    pub labels_per_class: usize,
    /// The cap on the unlabelled pool, if one was asked for.
    pub unlabelled_limit: Option<usize>,
    /// Images in the training set the indices point into.
    pub n_total: usize,
    /// Indices whose labels are used, exactly `labels_per_class` per class.
    pub labelled: Vec<usize>,
    /// Indices used without labels: the rest (a seeded sample of it under `unlabelled_limit`).
    pub unlabelled: Vec<usize>,
}

/// Indices of each class, in order; labels past `classes` are reported.
fn by_class(labels: &[u32], n_classes: usize) -> Result<Vec<Vec<usize>>> {
    let mut groups = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        let group = groups
            .get_mut(l as usize)
            .ok_or(ImageError::LabelOutOfRange {
                file: "pool labels".into(),
                record: i,
                label: l,
                max: n_classes.saturating_sub(1) as u32,
            })?;
        group.push(i);
    }
    Ok(groups)
}

impl Pools {
    /// Draws `labels_per_class` labelled images per class (seeded, balanced; 0: none, for the
    /// methods without a labelled pool); the rest are unlabelled,
    /// capped at `unlabelled_limit` by a seeded uniform sample. `classes` names the class ids in errors.
    pub fn draw(
        labels: &[u32],
        classes: &[String],
        labels_per_class: usize,
        unlabelled_limit: Option<usize>,
        seed: u64,
    ) -> Result<Pools> {
        let mut groups = by_class(labels, classes.len())?;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, LABELLED_STREAM));
        let mut labelled = Vec::with_capacity(labels_per_class * classes.len());
        let mut unlabelled = Vec::with_capacity(labels.len());
        for (class, group) in classes.iter().zip(groups.iter_mut()) {
            if group.len() < labels_per_class {
                return Err(ImageError::ClassTooSmall {
                    class: class.clone(),
                    count: group.len(),
                    wanted: labels_per_class,
                });
            }
            group.shuffle(&mut rng);
            labelled.extend_from_slice(&group[..labels_per_class]);
            unlabelled.extend_from_slice(&group[labels_per_class..]);
        }
        if let Some(limit) = unlabelled_limit.filter(|&l| l < unlabelled.len()) {
            unlabelled.sort_unstable();
            unlabelled.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(
                seed,
                UNLABELLED_STREAM,
            )));
            unlabelled.truncate(limit);
        }
        labelled.sort_unstable();
        unlabelled.sort_unstable();
        Ok(Pools {
            seed,
            labels_per_class,
            unlabelled_limit,
            n_total: labels.len(),
            labelled,
            unlabelled,
        })
    }

    /// Writes the pools as pretty JSON (`pools.json` in a run directory).
    pub fn save(&self, path: &Path) -> Result<()> {
        let file = path.display().to_string();
        let json = serde_json::to_string_pretty(self).map_err(|e| ImageError::Json {
            file: file.clone(),
            message: e.to_string(),
        })?;
        fs::write(path, json).map_err(|source| ImageError::Io { file, source })
    }

    /// Reads pools written by [`Pools::save`].
    pub fn load(path: &Path) -> Result<Pools> {
        let file = path.display().to_string();
        let text = fs::read_to_string(path).map_err(|source| ImageError::Io {
            file: file.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ImageError::Json {
            file,
            message: e.to_string(),
        })
    }
}

/// A train/test split of one set: indices, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// The seed the split was drawn with.
    pub seed: u64,
    /// The fraction of each class held out.
    pub test_fraction: f64,
    /// Indices of the training pool.
    pub train: Vec<usize>,
    /// Indices held out for testing.
    pub test: Vec<usize>,
}

/// Splits a set stratified by class: `round(count × test_fraction)` of each class (seeded) are held out.
pub fn stratified_split(
    labels: &[u32],
    n_classes: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<Split> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(ImageError::BadFraction {
            value: test_fraction,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, SPLIT_STREAM));
    let mut train = Vec::with_capacity(labels.len());
    let mut test = Vec::new();
    for mut group in by_class(labels, n_classes)? {
        let n_test = (group.len() as f64 * test_fraction).round() as usize;
        group.shuffle(&mut rng);
        test.extend_from_slice(&group[..n_test]);
        train.extend_from_slice(&group[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok(Split {
        seed,
        test_fraction,
        train,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{shared_data, temp_dir};
    use super::*;

    /// 3 classes with 10, 7 and 5 images, interleaved.
    fn labels() -> Vec<u32> {
        let mut l = Vec::new();
        for i in 0..10 {
            l.push(0);
            if i < 7 {
                l.push(1);
            }
            if i < 5 {
                l.push(2);
            }
        }
        l
    }

    fn classes() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    #[test]
    fn pools_are_balanced_disjoint_and_covering() {
        let l = labels();
        let p = Pools::draw(&l, &classes(), 4, None, 7).expect("draws");
        for c in 0..3 {
            assert_eq!(p.labelled.iter().filter(|&&i| l[i] == c).count(), 4);
        }
        let mut all = [p.labelled.clone(), p.unlabelled.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..l.len()).collect::<Vec<_>>());
        assert_eq!(p.labelled.len() + p.unlabelled.len(), l.len());
    }

    #[test]
    fn pools_are_seed_stable_and_seed_sensitive() {
        let l = labels();
        let a = Pools::draw(&l, &classes(), 2, Some(5), 1).expect("draws");
        assert_eq!(
            a,
            Pools::draw(&l, &classes(), 2, Some(5), 1).expect("draws")
        );
        assert_eq!(a.unlabelled.len(), 5);
        assert!(a.unlabelled.iter().all(|i| !a.labelled.contains(i)));
        let differs = (2..12).any(|s| {
            Pools::draw(&l, &classes(), 2, Some(5), s)
                .expect("draws")
                .labelled
                != a.labelled
        });
        assert!(differs);
        let b = Pools::draw(&l, &classes(), 2, Some(5), 2).expect("draws");
        assert_ne!((a.labelled, a.unlabelled), (b.labelled, b.unlabelled));
    }

    #[test]
    fn too_many_labels_are_errors_and_zero_leaves_all_unlabelled() {
        let e = Pools::draw(&labels(), &classes(), 6, None, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "class \"c\" holds 5 images, fewer than labels_per_class 6"
        );
        // None labelled: every image is in the unlabelled pool.
        let none = Pools::draw(&labels(), &classes(), 0, None, 0).expect("draws");
        assert!(none.labelled.is_empty());
        assert_eq!(none.unlabelled, (0..labels().len()).collect::<Vec<_>>());
        let e = Pools::draw(&[0, 3], &classes(), 1, None, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pool labels: record 1: label 3 is out of range 0..=2"
        );
    }

    #[test]
    fn pools_survive_a_json_round_trip() {
        let p = Pools::draw(&labels(), &classes(), 3, Some(4), 9).expect("draws");
        let path = temp_dir("pools").join("pools.json");
        p.save(&path).expect("saves");
        assert_eq!(Pools::load(&path).expect("loads"), p);
        fs::write(&path, "{").expect("write");
        assert!(Pools::load(&path)
            .unwrap_err()
            .to_string()
            .starts_with(&path.display().to_string()));
    }

    #[test]
    fn stratified_split_is_per_class_disjoint_covering_and_seeded() {
        let l = labels();
        let s = stratified_split(&l, 3, 0.2, 5).expect("splits");
        let test_per_class: Vec<usize> = (0..3)
            .map(|c| s.test.iter().filter(|&&i| l[i] == c).count())
            .collect();
        assert_eq!(test_per_class, vec![2, 1, 1]);
        let mut all = [s.train.clone(), s.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..l.len()).collect::<Vec<_>>());
        assert_eq!(s, stratified_split(&l, 3, 0.2, 5).expect("splits"));
        assert!(
            (6..16).any(|seed| stratified_split(&l, 3, 0.2, seed).expect("splits").test != s.test)
        );
        let e = stratified_split(&l, 3, 1.0, 5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "test fraction 1 is not in the open interval (0, 1)"
        );
    }

    #[test]
    fn real_mnist_test_set_splits_into_balanced_pools() {
        let Some(dir) = shared_data("mnist") else {
            return;
        };
        let test = super::super::idx::load_mnist(&dir)
            .expect("the shared MNIST files load")
            .test;
        let split = stratified_split(&test.labels, test.n_classes(), 0.2, 0).expect("splits");
        assert_eq!((split.train.len(), split.test.len()), (8000, 2000));
        let train = test.subset(&split.train).expect("in range");
        let pools = Pools::draw(&train.labels, &train.classes, 4, Some(1000), 0).expect("draws");
        assert_eq!(
            (pools.labelled.len(), pools.unlabelled.len(), pools.n_total),
            (40, 1000, 8000)
        );
        let counts = train
            .subset(&pools.labelled)
            .expect("in range")
            .class_counts();
        assert_eq!(counts, vec![4; 10]);
    }
}
