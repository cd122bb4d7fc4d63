//! Deterministic per-domain splits (stratified 80/20 train/test, then validation from train)
//! and per-domain z-score normalisation fitted on the train split.

use rand::seq::SliceRandom;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Fraction of each domain held out for testing.
pub const TEST_FRACTION: f64 = 0.2;
/// Fraction of the remaining train windows used for validation …
pub const VALID_FRACTION: f64 = 0.2;
/// … but never more than this many windows.
pub const MAX_VALID: usize = 1000;

/// Window indices (into one domain) of its train, validation and test parts, each sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSplit {
    /// Indices used for training.
    pub train: Vec<usize>,
    /// Indices used for validation (model selection).
    pub valid: Vec<usize>,
    /// Indices held out for the final test.
    pub test: Vec<usize>,
}

/// Picks exactly `n_pick` of `indices` so that each class keeps its share (largest remainder),
/// shuffling within classes with `rng`. Returns `(rest, picked)`, both sorted.
pub fn stratified_pick(
    indices: &[usize],
    labels: &[u32],
    n_pick: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let n = indices.len();
    let n_pick = n_pick.min(n);
    let n_classes = indices
        .iter()
        .map(|&i| labels[i] as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for &i in indices {
        by_class[labels[i] as usize].push(i);
    }
    // Quotas: floor of the proportional share, then the largest remainders (ties: lower class id).
    let mut quota: Vec<usize> = Vec::with_capacity(n_classes);
    let mut rems: Vec<(f64, usize)> = Vec::with_capacity(n_classes);
    for (c, members) in by_class.iter().enumerate() {
        let exact = n_pick as f64 * members.len() as f64 / n.max(1) as f64;
        quota.push(exact.floor() as usize);
        rems.push((exact - exact.floor(), c));
    }
    let mut left = n_pick - quota.iter().sum::<usize>();
    rems.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, c) in &rems {
        if left == 0 {
            break;
        }
        if quota[c] < by_class[c].len() {
            quota[c] += 1;
            left -= 1;
        }
    }
    let mut rest = Vec::with_capacity(n - n_pick);
    let mut picked = Vec::with_capacity(n_pick);
    for (c, members) in by_class.iter_mut().enumerate() {
        members.shuffle(rng);
        picked.extend_from_slice(&members[..quota[c]]);
        rest.extend_from_slice(&members[quota[c]..]);
    }
    rest.sort_unstable();
    picked.sort_unstable();
    (rest, picked)
}

/// The reference split of one domain: stratified 80/20 train/test (test = ⌈0.2·n⌉ as
/// scikit-learn), then validation stratified from train with [`valid_size`].
/// Depends only on `seed`, the domain id and the labels.
pub fn split_domain(labels: &[u32], seed: u64, domain_id: u32) -> DomainSplit {
    split_domain_with(labels, seed, domain_id, ValidSize::Sklearn)
}

/// How the validation part of a domain's training windows is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidSize {
    /// The reference's (scikit-learn's) rule, [`valid_size`].
    #[default]
    Sklearn,
    /// min(1000, round(0.2·n)): runs made before the fidelity fixes (config conventions 1).
    Rounded,
}

impl ValidSize {
    /// Validation windows for `n_train` training windows.
    pub fn of(self, n_train: usize) -> usize {
        match self {
            ValidSize::Sklearn => valid_size(n_train),
            ValidSize::Rounded => {
                ((VALID_FRACTION * n_train as f64).round() as usize).min(MAX_VALID)
            }
        }
    }
}

/// [`split_domain`] with an explicit validation-size rule.
pub fn split_domain_with(
    labels: &[u32],
    seed: u64,
    domain_id: u32,
    rule: ValidSize,
) -> DomainSplit {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(domain_id as u64 + 1)),
    );
    let all: Vec<usize> = (0..labels.len()).collect();
    let n_test = (TEST_FRACTION * labels.len() as f64).ceil() as usize;
    let (train_all, test) = stratified_pick(&all, labels, n_test, &mut rng);
    let n_valid = rule.of(train_all.len());
    let (train, valid) = stratified_pick(&train_all, labels, n_valid, &mut rng);
    DomainSplit { train, valid, test }
}

/// Validation windows taken from `n_train` training windows, as the CoDATS reference does:
/// scikit-learn's `test_size=0.2` (⌈0.2·n⌉) unless ⌊0.2·n⌋ exceeds 1000, then exactly 1000.
pub fn valid_size(n_train: usize) -> usize {
    let share = VALID_FRACTION * n_train as f64;
    if share.floor() as usize > MAX_VALID {
        MAX_VALID
    } else {
        share.ceil() as usize
    }
}

/// Per-channel mean and standard deviation of the windows `idx` of `x` (`[n, channels, length]`).
pub fn channel_stats(x: &[f32], channels: usize, length: usize, idx: &[usize]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(channels);
    for c in 0..channels {
        let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0usize);
        for &i in idx {
            let row = &x[(i * channels + c) * length..(i * channels + c + 1) * length];
            for &v in row {
                s += v as f64;
                s2 += (v as f64) * (v as f64);
            }
            n += length;
        }
        let mean = if n > 0 { s / n as f64 } else { 0.0 };
        let var = if n > 0 {
            (s2 / n as f64 - mean * mean).max(0.0)
        } else {
            0.0
        };
        out.push((mean, var.sqrt()));
    }
    out
}

/// Z-scores every window of one domain per channel with statistics of its `train` windows.
/// A constant channel (std < 1e-8) is only centred.
pub fn zscore_domain(x: &mut [f32], channels: usize, length: usize, train: &[usize]) {
    let stats = channel_stats(x, channels, length, train);
    for (k, chunk) in x.chunks_mut(length).enumerate() {
        let (mean, std) = stats[k % channels];
        let inv = if std < 1e-8 { 1.0 } else { 1.0 / std };
        for v in chunk {
            *v = ((*v as f64 - mean) * inv) as f32;
        }
    }
}

/// Like [`zscore_domain`] for zero-padded windows: window `i` holds `valid[i]` real samples per channel
/// followed by padding. Statistics use the real samples of the `train` windows only; real samples are
/// normalised and padding stays exactly zero (the reference normalises uWave gestures before padding).
pub fn zscore_domain_padded(
    x: &mut [f32],
    channels: usize,
    length: usize,
    train: &[usize],
    valid: &[u32],
) {
    let mut stats = Vec::with_capacity(channels);
    for c in 0..channels {
        let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0usize);
        for &i in train {
            let v = (valid[i] as usize).min(length);
            let row = &x[(i * channels + c) * length..(i * channels + c) * length + v];
            for &a in row {
                s += a as f64;
                s2 += (a as f64) * (a as f64);
            }
            n += v;
        }
        let mean = if n > 0 { s / n as f64 } else { 0.0 };
        let var = if n > 0 {
            (s2 / n as f64 - mean * mean).max(0.0)
        } else {
            0.0
        };
        stats.push((mean, var.sqrt()));
    }
    for (k, chunk) in x.chunks_mut(length).enumerate() {
        let (mean, std) = stats[k % channels];
        let inv = if std < 1e-8 { 1.0 } else { 1.0 / std };
        let v = (valid[k / channels] as usize).min(length);
        for a in &mut chunk[..v] {
            *a = ((*a as f64 - mean) * inv) as f32;
        }
        for a in &mut chunk[v..] {
            *a = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u32> {
        // 6 classes with unequal sizes: 50, 40, 30, 60, 20, 100 windows, interleaved
        let sizes = [50, 40, 30, 60, 20, 100];
        let mut v = Vec::new();
        let mut left = sizes;
        while left.iter().any(|&s| s > 0) {
            for (c, l) in left.iter_mut().enumerate() {
                if *l > 0 {
                    v.push(c as u32);
                    *l -= 1;
                }
            }
        }
        v
    }

    #[test]
    fn split_sizes_follow_the_reference() {
        let y = labels();
        let s = split_domain(&y, 42, 7);
        assert_eq!(y.len(), 300);
        assert_eq!(s.test.len(), 60);
        assert_eq!(s.valid.len(), 48); // ceil(0.2 * 240)
        assert_eq!(s.train.len(), 192);
        // disjoint and complete
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.valid)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn split_keeps_class_ratios() {
        let y = labels();
        let s = split_domain(&y, 1, 3);
        let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| y[i] == c).count();
        // test = 20 % of each class exactly (all class sizes are multiples of 5)
        for (c, n) in [50, 40, 30, 60, 20, 100].iter().enumerate() {
            assert_eq!(count(&s.test, c as u32), n / 5, "class {c}");
        }
        // validation keeps ratios within one window of the proportional share
        for (c, n) in [50usize, 40, 30, 60, 20, 100].iter().enumerate() {
            let want = 48.0 * (*n as f64 * 0.8) / 240.0;
            let got = count(&s.valid, c as u32) as f64;
            assert!((got - want).abs() <= 1.0, "class {c}: {got} vs {want}");
        }
    }

    #[test]
    fn split_is_seed_stable_and_seed_dependent() {
        let y = labels();
        assert_eq!(split_domain(&y, 5, 2), split_domain(&y, 5, 2));
        assert_ne!(split_domain(&y, 5, 2).test, split_domain(&y, 6, 2).test);
        assert_ne!(split_domain(&y, 5, 2).test, split_domain(&y, 5, 3).test);
    }

    #[test]
    fn validation_size_is_sklearns_rule() {
        // UCI HAR subject 11 (316 windows -> 252 train) and subject 2 (302 -> 241).
        assert_eq!(valid_size(252), 51); // ceil(50.4), not round
        assert_eq!(valid_size(241), 49); // ceil(48.2)
        assert_eq!(valid_size(240), 48);
        assert_eq!(valid_size(5004), 1001); // floor(1000.8) = 1000 is not > 1000: ceil
        assert_eq!(valid_size(5005), 1000); // floor(1001) > 1000: capped
        assert_eq!(valid_size(5010), 1000); // floor(1002) > 1000: capped
        assert_eq!(valid_size(0), 0);
    }

    #[test]
    fn validation_is_capped_at_1000() {
        let y: Vec<u32> = (0..10_000).map(|i| (i % 4) as u32).collect();
        let s = split_domain(&y, 0, 0);
        assert_eq!(s.test.len(), 2000);
        assert_eq!(s.valid.len(), 1000);
        assert_eq!(s.train.len(), 7000);
    }

    #[test]
    fn zscore_uses_train_statistics_only() {
        // 3 windows, 1 channel, length 2
        let mut x = vec![1.0f32, 3.0, 5.0, 7.0, 100.0, 100.0];
        zscore_domain(&mut x, 1, 2, &[0, 1]);
        // train mean 4, std sqrt(5)
        let s = 5f32.sqrt();
        let want = [-3.0 / s, -1.0 / s, 1.0 / s, 3.0 / s, 96.0 / s, 96.0 / s];
        for (a, b) in x.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn padded_zscore_ignores_and_keeps_the_padding() {
        // 2 windows, 1 channel, length 4: [1, 3, pad, pad], [5, 7, 9, pad].
        let mut x = vec![1.0f32, 3.0, 0.0, 0.0, 5.0, 7.0, 9.0, 0.0];
        zscore_domain_padded(&mut x, 1, 4, &[0], &[2, 3]);
        // train = window 0 only: mean 2, std 1
        assert_eq!(x, [-1.0, 1.0, 0.0, 0.0, 3.0, 5.0, 7.0, 0.0]);
    }
}
