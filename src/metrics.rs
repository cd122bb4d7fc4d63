//! Classification metrics: accuracy, macro-F1, confusion matrix.

use serde::{Deserialize, Serialize};

/// Confusion matrix `[true][predicted]` of `k` classes.
pub fn confusion(truth: &[u32], pred: &[u32], k: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; k]; k];
    for (&t, &p) in truth.iter().zip(pred) {
        m[t as usize][p as usize] += 1;
    }
    m
}

/// Fraction of predictions equal to the truth (0 for no samples).
pub fn accuracy(truth: &[u32], pred: &[u32]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    truth.iter().zip(pred).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64
}

/// Unweighted mean over classes of F1; classes absent from both truth and prediction are
/// skipped (as scikit-learn's `labels` present in the data).
pub fn macro_f1(confusion: &[Vec<u64>]) -> f64 {
    let k = confusion.len();
    let mut sum = 0.0;
    let mut n = 0usize;
    for c in 0..k {
        let tp = confusion[c][c] as f64;
        let support: f64 = confusion[c].iter().sum::<u64>() as f64;
        let predicted: f64 = confusion.iter().map(|r| r[c]).sum::<u64>() as f64;
        if support == 0.0 && predicted == 0.0 {
            continue;
        }
        let denom = support + predicted;
        sum += if denom > 0.0 { 2.0 * tp / denom } else { 0.0 };
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Accuracy, macro-F1 and confusion matrix of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Fraction correct.
    pub accuracy: f64,
    /// Macro-averaged F1.
    pub macro_f1: f64,
    /// Confusion matrix `[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// Number of windows evaluated.
    pub n: usize,
}

impl Classification {
    /// Scores predictions against the truth for `k` classes.
    pub fn new(truth: &[u32], pred: &[u32], k: usize) -> Self {
        let confusion = confusion(truth, pred, k);
        Self {
            accuracy: accuracy(truth, pred),
            macro_f1: macro_f1(&confusion),
            confusion,
            n: truth.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_a_small_example() {
        let t = [0, 0, 1, 1, 2, 2];
        let p = [0, 1, 1, 1, 2, 0];
        let c = Classification::new(&t, &p, 3);
        assert_eq!(
            c.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 1]]
        );
        assert!((c.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // F1: class0 2*1/(2+2)=0.5, class1 2*2/(2+3)=0.8, class2 2*1/(2+1)=2/3
        assert!((c.macro_f1 - (0.5 + 0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }
}
