//! A domain-adaptation problem: the chosen source and target domains of one dataset, each
//! split into train / validation / test and normalised as the dataset prescribes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::split::{
    split_domain_with, zscore_domain, zscore_domain_padded, DomainSplit, ValidSize,
};
use crate::data::{Dataset, DomainData};

pub mod images;
pub use images::ImageMeta;

/// Why a (sources, target) choice cannot be trained.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProblemError {
    /// The target also appears among the sources.
    #[error("target {0} is also a source; pick a target outside --sources")]
    TargetIsSource(u32),
    /// A source id is listed twice.
    #[error("source {0} is listed twice in --sources")]
    DuplicateSource(u32),
    /// An id that the dataset does not have.
    #[error("domain {id} is not in {dataset} (its domains are {valid})")]
    UnknownDomain {
        id: u32,
        dataset: String,
        valid: String,
    },
    /// No sources for a method that needs them.
    #[error("method {0} needs at least one source domain (--sources)")]
    NoSources(String),
    /// A dataset with fewer than two classes.
    #[error("{dataset} has {n} class(es) ({names}): a classifier needs at least 2 (check the label column)")]
    TooFewClasses {
        dataset: String,
        n: usize,
        names: String,
    },
    /// A domain with too few windows to split into train / validation / test.
    #[error("domain {id} of {dataset} has {n} windows; at least {min} are needed to split it")]
    TooSmall {
        id: u32,
        dataset: String,
        n: usize,
        min: usize,
    },
    /// `--few-shot K` when a class of the target has fewer than K training windows.
    #[error("--few-shot {k}: target domain {id} has {n} training window(s) of class {class} (the few-shot rule needs {k} of every class; lower --few-shot)")]
    FewShotTooFew {
        k: usize,
        id: u32,
        n: usize,
        class: String,
    },
}

/// Seed stream of the few-shot selection windows (from the split seed).
const FEW_SHOT_STREAM: u64 = 77;

/// Below this many test windows a domain's accuracy is coarse enough to warn about.
pub const FEW_TEST_WINDOWS: usize = 10;

/// Fewest windows a domain may have (so that train, validation and test are all non-empty).
pub const MIN_WINDOWS: usize = 5;

/// One domain ready for training: its windows (normalised if the dataset says so) and split.
#[derive(Debug, Clone)]
pub struct PreparedDomain {
    /// The user-facing domain id.
    pub id: u32,
    /// Windows `[n, channels, length]`.
    pub x: Vec<f32>,
    /// Labels.
    pub y: Vec<u32>,
    /// Train / validation / test indices.
    pub split: DomainSplit,
}

impl PreparedDomain {
    /// Copies the windows and labels at `idx` into contiguous buffers.
    pub fn gather(&self, idx: &[usize], window: usize) -> (Vec<f32>, Vec<u32>) {
        let mut x = Vec::with_capacity(idx.len() * window);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            x.extend_from_slice(&self.x[i * window..(i + 1) * window]);
            y.push(self.y[i]);
        }
        (x, y)
    }
}

/// Sources and target of one run, prepared.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Dataset name.
    pub dataset: String,
    /// Channels per window.
    pub channels: usize,
    /// Samples per window.
    pub length: usize,
    /// Class names.
    pub class_names: Vec<String>,
    /// Source domains in the order given (source i has domain label i + 1).
    pub sources: Vec<PreparedDomain>,
    /// The target domain (domain label 0).
    pub target: PreparedDomain,
    /// For an image problem (labelled pool = the one source, unlabelled pool = the target): the
    /// image shape, views, normalisation and pools ([`images`]).
    pub image: Option<ImageMeta>,
}

/// Writes ids compactly: `1..30` when contiguous, else a comma list.
pub fn describe_ids(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let contiguous = ids.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous && ids.len() > 2 {
        format!("{}..{}", ids[0], ids[ids.len() - 1])
    } else {
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Checks a (sources, target) choice against the dataset's domains.
pub fn validate_domains(
    dataset: &Dataset,
    sources: &[u32],
    target: u32,
) -> Result<(), ProblemError> {
    let ids = dataset.domain_ids();
    let unknown = |id: u32| ProblemError::UnknownDomain {
        id,
        dataset: dataset.name.clone(),
        valid: describe_ids(&ids),
    };
    let mut seen = Vec::new();
    for &s in sources {
        if !ids.contains(&s) {
            return Err(unknown(s));
        }
        if seen.contains(&s) {
            return Err(ProblemError::DuplicateSource(s));
        }
        seen.push(s);
    }
    if !ids.contains(&target) {
        return Err(unknown(target));
    }
    if sources.contains(&target) {
        return Err(ProblemError::TargetIsSource(target));
    }
    Ok(())
}

impl Problem {
    /// Splits (seeded by `seed`) and normalises the chosen domains of `dataset`.
    pub fn new(
        dataset: &Dataset,
        sources: &[u32],
        target: u32,
        seed: u64,
    ) -> Result<Self, ProblemError> {
        Self::with_valid_size(dataset, sources, target, seed, ValidSize::Sklearn)
    }

    /// The problem a run's configuration describes (its domains, split seed and conventions).
    pub fn for_run(
        dataset: &Dataset,
        cfg: &crate::config::TrainConfig,
    ) -> Result<Self, ProblemError> {
        Self::with_valid_size(
            dataset,
            &cfg.sources,
            cfg.target,
            cfg.split_seed,
            cfg.valid_size(),
        )
    }

    /// [`Problem::new`] with an explicit validation-size rule.
    pub fn with_valid_size(
        dataset: &Dataset,
        sources: &[u32],
        target: u32,
        seed: u64,
        valid_size: ValidSize,
    ) -> Result<Self, ProblemError> {
        validate_domains(dataset, sources, target)?;
        if dataset.n_classes() < 2 {
            return Err(ProblemError::TooFewClasses {
                dataset: dataset.name.clone(),
                n: dataset.n_classes(),
                names: dataset.class_names.join(", "),
            });
        }
        let window = dataset.channels * dataset.length;
        let prepare = |d: &DomainData| -> Result<PreparedDomain, ProblemError> {
            if d.len() < MIN_WINDOWS {
                return Err(ProblemError::TooSmall {
                    id: d.id,
                    dataset: dataset.name.clone(),
                    n: d.len(),
                    min: MIN_WINDOWS,
                });
            }
            debug_assert_eq!(d.x.len(), d.len() * window);
            let split = split_domain_with(&d.y, seed, d.id, valid_size);
            let mut x = d.x.clone();
            if dataset.zscore {
                match &d.valid_lengths {
                    None => zscore_domain(&mut x, dataset.channels, dataset.length, &split.train),
                    Some(valid) => zscore_domain_padded(
                        &mut x,
                        dataset.channels,
                        dataset.length,
                        &split.train,
                        valid,
                    ),
                }
            }
            Ok(PreparedDomain {
                id: d.id,
                x,
                y: d.y.clone(),
                split,
            })
        };
        let get = |id: u32| dataset.domain(id).expect("validated above");
        let sources = sources
            .iter()
            .map(|&s| prepare(get(s)))
            .collect::<Result<Vec<_>, _>>()?;
        let target = prepare(get(target))?;
        Ok(Self {
            dataset: dataset.name.clone(),
            channels: dataset.channels,
            length: dataset.length,
            class_names: dataset.class_names.clone(),
            sources,
            target,
            image: None,
        })
    }

    /// The few-shot selection rule's labelled target windows: `k` of every class from the
    /// target's training split (positions in the domain, ascending), each class's drawn by a
    /// shuffle seeded by `split_seed`, so that every method and seed of a problem is selected
    /// on the same windows. A class with fewer than `k` training windows is an error.
    pub fn few_shot_windows(&self, k: usize, split_seed: u64) -> Result<Vec<usize>, ProblemError> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let t = &self.target;
        let mut by_class = vec![Vec::new(); self.n_classes()];
        for &i in &t.split.train {
            by_class[t.y[i] as usize].push(i);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::seed::derive_seed(
            split_seed,
            FEW_SHOT_STREAM + t.id as u64,
        ));
        let mut out = Vec::with_capacity(k * by_class.len());
        for (c, members) in by_class.iter_mut().enumerate() {
            if members.len() < k {
                return Err(ProblemError::FewShotTooFew {
                    k,
                    id: t.id,
                    n: members.len(),
                    class: self.class_names[c].clone(),
                });
            }
            members.shuffle(&mut rng);
            out.extend_from_slice(&members[..k]);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// What a user should know before trusting this problem's numbers: domains whose test
    /// split is so small that their accuracy moves in coarse steps.
    pub fn warnings(&self) -> Vec<String> {
        self.sources
            .iter()
            .chain(std::iter::once(&self.target))
            .filter(|d| d.split.test.len() < FEW_TEST_WINDOWS)
            .map(|d| {
                let n = d.split.test.len();
                format!(
                    "warning: domain {} has {n} test window{}: its test accuracy moves in steps of {:.0}%",
                    d.id,
                    if n == 1 { "" } else { "s" },
                    100.0 / n.max(1) as f64
                )
            })
            .collect()
    }

    /// Floats per window.
    pub fn window(&self) -> usize {
        self.channels * self.length
    }

    /// The network's input shape of `n` windows: `[n, C, T]`, or `[n, C, H, W]` for images.
    pub fn input_shape(&self, n: usize) -> Vec<usize> {
        match &self.image {
            Some(m) => vec![n, m.shape.channels, m.shape.height, m.shape.width],
            None => vec![n, self.channels, self.length],
        }
    }

    /// `n` windows gathered from the domains as the network's input (images normalised).
    pub fn input(&self, mut x: Vec<f32>, n: usize) -> candle_core::Result<candle_core::Tensor> {
        if let Some(m) = &self.image {
            m.normalise(&mut x);
        }
        candle_core::Tensor::from_vec(x, self.input_shape(n), &candle_core::Device::Cpu)
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The splits of every domain of the problem, keyed by domain id (saved as `splits.json`).
    pub fn splits(&self) -> BTreeMap<u32, DomainSplit> {
        self.sources
            .iter()
            .chain(std::iter::once(&self.target))
            .map(|d| (d.id, d.split.clone()))
            .collect()
    }

    /// Class proportions of the target's train split (DA-WS's simulated reported proportions).
    pub fn target_train_proportions(&self) -> Vec<f64> {
        let mut counts = vec![0usize; self.n_classes()];
        for &i in &self.target.split.train {
            counts[self.target.y[i] as usize] += 1;
        }
        let n = self.target.split.train.len().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / n).collect()
    }
}

/// A saved record of splits, to check a run directory matches the data it is evaluated on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedSplits(pub BTreeMap<u32, DomainSplit>);

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        let dom = |id: u32, n: usize| DomainData {
            id,
            x: (0..n * 2 * 3).map(|v| v as f32).collect(),
            y: (0..n).map(|i| (i % 2) as u32).collect(),
            valid_lengths: None,
        };
        Dataset {
            name: "toy".into(),
            channels: 2,
            length: 3,
            class_names: vec!["a".into(), "b".into()],
            zscore: true,
            domains: vec![dom(1, 20), dom(2, 20), dom(3, 20), dom(4, 2)],
        }
    }

    #[test]
    fn one_class_is_refused_and_tiny_test_splits_are_warned_about() {
        let mut d = toy();
        for dom in &mut d.domains {
            dom.y.iter_mut().for_each(|y| *y = 0);
        }
        d.class_names = vec!["walk".into()];
        assert_eq!(
            Problem::new(&d, &[1], 2, 0).unwrap_err().to_string(),
            "toy has 1 class(es) (walk): a classifier needs at least 2 (check the label column)"
        );
        let d = toy();
        assert!(Problem::new(&d, &[1], 2, 0).unwrap().warnings().len() == 2);
        // 20 windows per domain: 4 test windows each.
        assert_eq!(
            Problem::new(&d, &[1], 2, 0).unwrap().warnings()[0],
            "warning: domain 1 has 4 test windows: its test accuracy moves in steps of 25%"
        );
    }

    #[test]
    fn bad_domain_choices_are_rejected_with_clear_messages() {
        let d = toy();
        let msg = |s: &[u32], t: u32| Problem::new(&d, s, t, 0).unwrap_err().to_string();
        assert_eq!(
            msg(&[1, 2], 2),
            "target 2 is also a source; pick a target outside --sources"
        );
        assert_eq!(msg(&[1, 1], 2), "source 1 is listed twice in --sources");
        assert_eq!(
            msg(&[1, 9], 2),
            "domain 9 is not in toy (its domains are 1..4)"
        );
        assert_eq!(
            msg(&[1], 0),
            "domain 0 is not in toy (its domains are 1..4)"
        );
        assert_eq!(
            msg(&[1], 4),
            "domain 4 of toy has 2 windows; at least 5 are needed to split it"
        );
        assert!(Problem::new(&d, &[1, 3], 2, 0).is_ok());
    }

    #[test]
    fn describe_ids_is_compact() {
        assert_eq!(describe_ids(&[1, 2, 3, 4]), "1..4");
        assert_eq!(describe_ids(&[0, 2, 5]), "0,2,5");
    }
}
