//! Clustering metrics: accuracy under the best cluster → class mapping (Hungarian, solved
//! exactly; or many-to-one by majority for overclustering), normalised mutual information and
//! the adjusted Rand index. Every function takes the true classes and the predicted clusters of
//! the same samples; cluster ids and class ids are independent (a permuted labelling scores the
//! same).

use serde::{Deserialize, Serialize};

/// Contingency table `[cluster][class]` of `pred` (ids < `k`) against `truth` (ids < `c`).
pub fn contingency(truth: &[u32], pred: &[u32], k: usize, c: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; c]; k];
    for (&t, &p) in truth.iter().zip(pred) {
        m[p as usize][t as usize] += 1;
    }
    m
}

/// 1 + the largest id (0 for none).
fn n_ids(ids: &[u32]) -> usize {
    ids.iter().max().map_or(0, |&m| m as usize + 1)
}

/// The assignment of rows to columns of `cost` (`n × m`, any shape) that minimises the total
/// cost, solved exactly (Kuhn–Munkres with potentials, O(max(n, m)³), on the matrix padded to a
/// square with zeros). Returns, per row, its column, or `None` for the rows left unassigned
/// when `n > m`.
pub fn min_cost_assignment(cost: &[Vec<f64>]) -> Vec<Option<usize>> {
    let n_rows = cost.len();
    let n_cols = cost.first().map_or(0, |r| r.len());
    let n = n_rows.max(n_cols);
    if n == 0 {
        return Vec::new();
    }
    let a = |i: usize, j: usize| -> f64 {
        if i < n_rows && j < n_cols {
            cost[i][j]
        } else {
            0.0
        }
    };
    // e-maxx's formulation, 1-based: u, v potentials; p[j] = row matched to column j.
    let inf = f64::INFINITY;
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n_rows];
    for j in 1..=n {
        let i = p[j];
        if i >= 1 && i <= n_rows && j <= n_cols {
            out[i - 1] = Some(j - 1);
        }
    }
    out
}

/// The one-to-one cluster → class mapping with the most samples on the diagonal (Hungarian on
/// the contingency table). With more clusters than classes, the clusters left over map to
/// `None` (their samples count as wrong).
pub fn hungarian_mapping(truth: &[u32], pred: &[u32], k: usize, c: usize) -> Vec<Option<u32>> {
    let table = contingency(truth, pred, k, c);
    let cost: Vec<Vec<f64>> = table
        .iter()
        .map(|r| r.iter().map(|&v| -(v as f64)).collect())
        .collect();
    min_cost_assignment(&cost)
        .into_iter()
        .map(|j| j.map(|j| j as u32))
        .collect()
}

/// The many-to-one mapping: each cluster to the class most of its samples have (ties: the
/// lowest class id; an empty cluster: class 0). The usual protocol for overclustering.
pub fn majority_mapping(truth: &[u32], pred: &[u32], k: usize, c: usize) -> Vec<u32> {
    contingency(truth, pred, k, c)
        .iter()
        .map(|row| {
            let mut best = 0usize;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

fn mapped_accuracy(truth: &[u32], pred: &[u32], map: impl Fn(u32) -> Option<u32>) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let right = truth
        .iter()
        .zip(pred)
        .filter(|&(&t, &p)| map(p) == Some(t))
        .count();
    right as f64 / truth.len() as f64
}

/// Clustering accuracy: the fraction of samples whose cluster maps to their class under the
/// best one-to-one mapping ([`hungarian_mapping`]; 0 for no samples).
pub fn hungarian_accuracy(truth: &[u32], pred: &[u32]) -> f64 {
    let (c, k) = (n_ids(truth), n_ids(pred));
    let map = hungarian_mapping(truth, pred, k, c);
    mapped_accuracy(truth, pred, |p| map[p as usize])
}

/// Accuracy under the many-to-one [`majority_mapping`] (≥ [`hungarian_accuracy`]).
pub fn majority_accuracy(truth: &[u32], pred: &[u32]) -> f64 {
    let (c, k) = (n_ids(truth), n_ids(pred));
    let map = majority_mapping(truth, pred, k, c);
    mapped_accuracy(truth, pred, |p| Some(map[p as usize]))
}

fn entropy(counts: impl Iterator<Item = u64>, n: f64) -> f64 {
    counts
        .filter(|&v| v > 0)
        .map(|v| {
            let p = v as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// Normalised mutual information with the arithmetic-mean normalisation, scikit-learn's
/// default: `I(U; V) / ((H(U) + H(V)) / 2)`, natural logarithms. As scikit-learn: 1 when both
/// labellings have a single cluster (or no samples), 0 when the mutual information is 0.
pub fn nmi(a: &[u32], b: &[u32]) -> f64 {
    let (ka, kb) = (n_ids(a), n_ids(b));
    let n = a.len().min(b.len());
    let table = contingency(a, b, kb, ka);
    let row: Vec<u64> = table.iter().map(|r| r.iter().sum()).collect();
    let col: Vec<u64> = (0..ka).map(|j| table.iter().map(|r| r[j]).sum()).collect();
    let used = |v: &[u64]| v.iter().filter(|&&x| x > 0).count();
    let (ua, ub) = (used(&col), used(&row));
    if n == 0 || (ua == 1 && ub == 1) {
        return 1.0;
    }
    let nf = n as f64;
    let mut mi = 0.0;
    for (i, r) in table.iter().enumerate() {
        for (j, &v) in r.iter().enumerate() {
            if v > 0 {
                let v = v as f64;
                mi += v / nf * (v * nf / (row[i] as f64 * col[j] as f64)).ln();
            }
        }
    }
    if mi <= 0.0 {
        return 0.0;
    }
    let h = (entropy(row.into_iter(), nf) + entropy(col.into_iter(), nf)) / 2.0;
    (mi / h.max(f64::EPSILON)).min(1.0)
}

fn pairs(v: u64) -> f64 {
    let v = v as f64;
    v * (v - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert & Arabie): `(Σ C(n_ij, 2) − E) / (½(Σ C(a_i, 2) + Σ C(b_j, 2)) − E)`
/// with `E = Σ C(a_i, 2) · Σ C(b_j, 2) / C(n, 2)`. 1 when the denominator is 0 (both labellings
/// trivially equal: one cluster each, or every sample its own), as scikit-learn.
pub fn ari(a: &[u32], b: &[u32]) -> f64 {
    let (ka, kb) = (n_ids(a), n_ids(b));
    let n = a.len().min(b.len()) as u64;
    let table = contingency(a, b, kb, ka);
    let index: f64 = table.iter().flatten().map(|&v| pairs(v)).sum();
    let rows: f64 = table.iter().map(|r| pairs(r.iter().sum())).sum();
    let cols: f64 = (0..ka)
        .map(|j| pairs(table.iter().map(|r| r[j]).sum()))
        .sum();
    let expected = if n < 2 { 0.0 } else { rows * cols / pairs(n) };
    let max = (rows + cols) / 2.0;
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Every clustering score of one labelling against the truth, as result.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterScores {
    /// Clusters the method predicts into (K).
    pub clusters: usize,
    /// Accuracy under the best one-to-one mapping (Hungarian; with K > classes the clusters
    /// left unmatched count as wrong).
    pub hungarian_accuracy: f64,
    /// Accuracy with each cluster mapped to its majority class (the overclustering protocol).
    pub majority_accuracy: f64,
    /// NMI, arithmetic-mean normalisation.
    pub nmi: f64,
    /// Adjusted Rand index.
    pub ari: f64,
    /// Samples scored.
    pub n: usize,
}

impl ClusterScores {
    /// Scores clusters `pred` (ids < `clusters`) against classes `truth`.
    pub fn new(truth: &[u32], pred: &[u32], clusters: usize) -> Self {
        Self {
            clusters,
            hungarian_accuracy: hungarian_accuracy(truth, pred),
            majority_accuracy: majority_accuracy(truth, pred),
            nmi: nmi(truth, pred),
            ari: ari(truth, pred),
            n: truth.len(),
        }
    }

    /// "ACC 61.2 %  NMI 0.583  ARI 0.455 (majority ACC 64.0 %, K 10, 2000 images)".
    pub fn summary(&self) -> String {
        format!(
            "ACC {:.2}%  NMI {:.4}  ARI {:.4}  (majority ACC {:.2}%, K {}, {} images)",
            100.0 * self.hungarian_accuracy,
            self.nmi,
            self.ari,
            100.0 * self.majority_accuracy,
            self.clusters,
            self.n
        )
    }
}

/// Predictions mapped to classes for a confusion matrix: by the Hungarian mapping when
/// `clusters ≤ classes`, else by majority (an unmatched cluster has no class one-to-one).
pub fn mapped_predictions(
    truth: &[u32],
    pred: &[u32],
    clusters: usize,
    classes: usize,
) -> Vec<u32> {
    if clusters <= classes {
        let map = hungarian_mapping(truth, pred, clusters, classes);
        pred.iter()
            .map(|&p| map[p as usize].expect("every cluster is matched when K ≤ classes"))
            .collect()
    } else {
        let map = majority_mapping(truth, pred, clusters, classes);
        pred.iter().map(|&p| map[p as usize]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn hungarian_matches_brute_force_on_random_tables() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for trial in 0..200 {
            let (n, m) = (rng.random_range(1..=6), rng.random_range(1..=6));
            let cost: Vec<Vec<f64>> = (0..n)
                .map(|_| (0..m).map(|_| rng.random_range(0..20) as f64).collect())
                .collect();
            let got = min_cost_assignment(&cost);
            // A valid assignment: distinct columns, min(n, m) of them.
            let cols: Vec<usize> = got.iter().flatten().copied().collect();
            let mut uniq = cols.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!((uniq.len(), cols.len()), (n.min(m), n.min(m)), "{trial}");
            let total: f64 = got
                .iter()
                .enumerate()
                .filter_map(|(i, j)| j.map(|j| cost[i][j]))
                .sum();
            // Brute force over every permutation of the padded square.
            let s = n.max(m);
            let best = permutations(s)
                .iter()
                .map(|p| {
                    (0..s)
                        .filter(|&i| i < n && p[i] < m)
                        .map(|i| cost[i][p[i]])
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min);
            close(total, best);
        }
    }

    #[test]
    fn clustering_accuracy_on_a_hand_made_example() {
        // truth 0 0 0 1 1 2, clusters 2 2 1 1 1 0. Table [cluster][class]:
        //   cluster 0: (0,0,1)  cluster 1: (1,2,0)  cluster 2: (2,0,0)
        // Best one-to-one: 2→0 (2), 1→1 (2), 0→2 (1) = 5 of 6.
        let t = [0, 0, 0, 1, 1, 2];
        let p = [2, 2, 1, 1, 1, 0];
        close(hungarian_accuracy(&t, &p), 5.0 / 6.0);
        // Majority: 0→2, 1→1, 2→0: the same 5 of 6.
        close(majority_accuracy(&t, &p), 5.0 / 6.0);
        // Overclustering, 4 clusters over 2 classes: truth 0 0 0 1 1 1, clusters 0 1 1 2 3 3.
        // One-to-one can match only two clusters: 1→0 (2) and 3→1 (2): 4/6. Majority maps
        // 0,1→0 and 2,3→1: 6/6.
        let t = [0, 0, 0, 1, 1, 1];
        let p = [0, 1, 1, 2, 3, 3];
        close(hungarian_accuracy(&t, &p), 4.0 / 6.0);
        close(majority_accuracy(&t, &p), 1.0);
        assert_eq!(mapped_predictions(&t, &p, 4, 2), vec![0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn nmi_and_ari_on_known_cases() {
        let a = [0, 0, 1, 1, 2, 2];
        // Identical and permuted partitions.
        close(nmi(&a, &a), 1.0);
        close(ari(&a, &a), 1.0);
        let perm = [2, 2, 0, 0, 1, 1];
        close(nmi(&a, &perm), 1.0);
        close(ari(&a, &perm), 1.0);
        // Independent: truth 0 0 1 1, clusters 0 1 0 1 — every cell of the table is 1, I = 0.
        close(nmi(&[0, 0, 1, 1], &[0, 1, 0, 1]), 0.0);
        // ARI there: Σ C(n_ij,2) = 0, rows = cols = 2·C(2,2) = 2, E = 2·2/C(4,2) = 2/3,
        // (0 − 2/3) / (2 − 2/3) = −1/2.
        close(ari(&[0, 0, 1, 1], &[0, 1, 0, 1]), -0.5);
        // A hand-computed case: truth 0 0 0 1 1 1, clusters 0 0 1 1 1 1.
        // Table [cluster][class]: (2,0), (1,3). n = 6.
        // I = 2/6 ln(2·6/(2·3)) + 1/6 ln(1·6/(4·3)) + 3/6 ln(3·6/(4·3))
        //   = (1/3) ln 2 + (1/6) ln(1/2) + (1/2) ln(3/2)
        // H(truth) = ln 2; H(clusters) = −(1/3) ln(1/3) − (2/3) ln(2/3).
        let i = (1.0 / 3.0) * 2f64.ln() + (1.0 / 6.0) * 0.5f64.ln() + 0.5 * 1.5f64.ln();
        let h = (2f64.ln() - (1.0 / 3.0) * (1.0f64 / 3.0).ln() - (2.0 / 3.0) * (2.0f64 / 3.0).ln())
            / 2.0;
        let (t, p) = ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]);
        close(nmi(&t, &p), i / h);
        // ARI: Σ C(n_ij,2) = C(2,2) + C(3,2) = 4; classes 2·C(3,2) = 6; clusters C(2,2)+C(4,2) = 7;
        // E = 6·7/15 = 2.8; (4 − 2.8) / (6.5 − 2.8) = 1.2/3.7.
        close(ari(&t, &p), 1.2 / 3.7);
        // Symmetric in its arguments.
        close(nmi(&p, &t), nmi(&t, &p));
        close(ari(&p, &t), ari(&t, &p));
        // Large independent labellings: both near 0.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x: Vec<u32> = (0..20000).map(|_| rng.random_range(0..10)).collect();
        let y: Vec<u32> = (0..20000).map(|_| rng.random_range(0..10)).collect();
        assert!(nmi(&x, &y) < 0.005, "{}", nmi(&x, &y));
        assert!(ari(&x, &y).abs() < 0.005, "{}", ari(&x, &y));
        // One cluster each: 1 (scikit-learn's convention).
        close(nmi(&[0, 0, 0], &[1, 1, 1]), 1.0);
        close(ari(&[0, 0, 0], &[1, 1, 1]), 1.0);
    }
}
