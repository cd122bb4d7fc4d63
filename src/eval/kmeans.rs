//! k-means (Lloyd's algorithm, exact squared Euclidean distances) with k-means++ seeding
//! (Arthur & Vassilvitskii 2007), seeded: the clustering baseline on raw pixels. A small exact
//! implementation rather than linfa-clustering, which would add ndarray and linfa's dependency
//! tree for ~100 lines.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of [`kmeans`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KmeansConfig {
    /// Clusters.
    pub k: usize,
    /// Most Lloyd iterations per restart (it stops earlier when no assignment changes).
    pub max_iter: usize,
    /// Restarts from fresh k-means++ seeds; the one with the lowest inertia is kept
    /// (scikit-learn's `n_init`).
    pub n_init: usize,
    /// Seed of the k-means++ draws.
    pub seed: u64,
    /// What happens to a cluster left empty by an update.
    pub empty: EmptyClusters,
}

/// How [`kmeans`] refills a cluster an update left empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyClusters {
    /// Its centre moves to the row farthest from its own centre (scikit-learn).
    #[default]
    Farthest,
    /// A non-empty cluster, drawn with probability proportional to its size, is split in two:
    /// the empty cluster takes its centre perturbed by +ε and it keeps the centre perturbed by
    /// −ε (signs alternating over coordinates, ε = 1/1024), and the next assignment divides its
    /// rows between them (DeepCluster, Caron et al. 2018, §3.3, as faiss does it).
    Split,
}

/// The relative perturbation of [`EmptyClusters::Split`].
pub const SPLIT_EPS: f32 = 1.0 / 1024.0;

/// The result of [`kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct Kmeans {
    /// Cluster of every row.
    pub labels: Vec<u32>,
    /// `k × d` centres, row-major.
    pub centres: Vec<f32>,
    /// Sum of squared distances of rows to their centres.
    pub inertia: f64,
    /// Lloyd iterations of the kept restart.
    pub iterations: usize,
}

fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The nearest centre of `row` (ties: the lowest index) and its squared distance.
fn nearest(row: &[f32], centres: &[f32], d: usize) -> (u32, f32) {
    let mut best = (0u32, f32::INFINITY);
    for (j, c) in centres.chunks(d).enumerate() {
        let v = dist2(row, c);
        if v < best.1 {
            best = (j as u32, v);
        }
    }
    best
}

/// k-means++ seeding: the first centre uniformly, each next one a row drawn with probability
/// proportional to its squared distance to the nearest centre so far.
fn seed_centres(x: &[f32], d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = x.len() / d;
    let mut centres = Vec::with_capacity(k * d);
    let first = rng.random_range(0..n);
    centres.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut d2: Vec<f64> = x
        .chunks(d)
        .map(|r| dist2(r, &centres[..d]) as f64)
        .collect();
    for _ in 1..k {
        let total: f64 = d2.iter().sum();
        let pick = if total <= 0.0 {
            rng.random_range(0..n)
        } else {
            let mut u = rng.random::<f64>() * total;
            let mut pick = n - 1;
            for (i, &v) in d2.iter().enumerate() {
                if u < v {
                    pick = i;
                    break;
                }
                u -= v;
            }
            pick
        };
        let c = x[pick * d..(pick + 1) * d].to_vec();
        for (v, r) in d2.iter_mut().zip(x.chunks(d)) {
            *v = v.min(dist2(r, &c) as f64);
        }
        centres.extend_from_slice(&c);
    }
    centres
}

/// Clusters the rows of `x` (`n × d`, row-major) into `cfg.k` clusters. An empty cluster after
/// an update is moved to the row farthest from its own centre (as scikit-learn relocates them).
pub fn kmeans(x: &[f32], d: usize, cfg: KmeansConfig) -> Result<Kmeans, String> {
    if d == 0 || x.len() % d != 0 {
        return Err(format!("{} values are not rows of {d}", x.len()));
    }
    let n = x.len() / d;
    if cfg.k < 2 {
        return Err(format!("k-means: k = {} (it must be at least 2)", cfg.k));
    }
    if cfg.k > n {
        return Err(format!(
            "k-means: k = {} is more clusters than the {n} samples",
            cfg.k
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut best: Option<Kmeans> = None;
    for _ in 0..cfg.n_init.max(1) {
        let mut centres = seed_centres(x, d, cfg.k, &mut rng);
        let mut labels = vec![u32::MAX; n];
        let mut iterations = 0;
        loop {
            let mut changed = false;
            let mut far = (0usize, -1f32);
            for (i, r) in x.chunks(d).enumerate() {
                let (j, v) = nearest(r, &centres, d);
                if labels[i] != j {
                    labels[i] = j;
                    changed = true;
                }
                if v > far.1 {
                    far = (i, v);
                }
            }
            if !changed || iterations == cfg.max_iter {
                break;
            }
            iterations += 1;
            let mut sums = vec![0f64; cfg.k * d];
            let mut counts = vec![0usize; cfg.k];
            for (r, &j) in x.chunks(d).zip(&labels) {
                counts[j as usize] += 1;
                sums[j as usize * d..(j as usize + 1) * d]
                    .iter_mut()
                    .zip(r)
                    .for_each(|(s, &v)| *s += v as f64);
            }
            for j in 0..cfg.k {
                let c = &mut centres[j * d..(j + 1) * d];
                if counts[j] == 0 {
                    if cfg.empty == EmptyClusters::Split {
                        continue; // after every mean is known, below
                    }
                    c.copy_from_slice(&x[far.0 * d..(far.0 + 1) * d]);
                    labels[far.0] = j as u32;
                    far.1 = -1.0;
                } else {
                    let m = counts[j] as f64;
                    c.iter_mut()
                        .zip(&sums[j * d..(j + 1) * d])
                        .for_each(|(c, &s)| *c = (s / m) as f32);
                }
            }
            if cfg.empty == EmptyClusters::Split {
                split_empty(&mut centres, &mut counts, d, &mut rng);
            }
        }
        let inertia: f64 = x
            .chunks(d)
            .zip(&labels)
            .map(|(r, &j)| dist2(r, &centres[j as usize * d..(j as usize + 1) * d]) as f64)
            .sum();
        if best.as_ref().is_none_or(|b| inertia < b.inertia) {
            best = Some(Kmeans {
                labels,
                centres,
                inertia,
                iterations,
            });
        }
    }
    Ok(best.expect("at least one restart"))
}

/// [`EmptyClusters::Split`]: every empty cluster takes half of a non-empty one drawn with
/// probability proportional to its size (of the clusters with at least 2 rows), its centre
/// perturbed by ±[`SPLIT_EPS`].
fn split_empty(centres: &mut [f32], counts: &mut [usize], d: usize, rng: &mut ChaCha8Rng) {
    let k = counts.len();
    for e in 0..k {
        if counts[e] > 0 {
            continue;
        }
        let total: usize = counts.iter().filter(|&&c| c >= 2).sum();
        if total == 0 {
            return;
        }
        let mut u = rng.random_range(0..total);
        let mut pick = 0;
        for (j, &c) in counts.iter().enumerate() {
            if c < 2 {
                continue;
            }
            if u < c {
                pick = j;
                break;
            }
            u -= c;
        }
        for i in 0..d {
            let v = centres[pick * d + i];
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            centres[e * d + i] = v * (1.0 + sign * SPLIT_EPS);
            centres[pick * d + i] = v * (1.0 - sign * SPLIT_EPS);
        }
        counts[e] = counts[pick] / 2;
        counts[pick] -= counts[e];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_finds_two_obvious_clusters_and_their_means() {
        // 1-d points {0, 1, 2} and {10, 11, 12}: centres 1 and 11, inertia 4 · 1 = 4.
        let x = [0.0, 10.0, 1.0, 11.0, 2.0, 12.0];
        let cfg = KmeansConfig {
            k: 2,
            max_iter: 100,
            n_init: 3,
            seed: 4,
            empty: EmptyClusters::Farthest,
        };
        let r = kmeans(&x, 1, cfg).unwrap();
        assert_eq!(r.labels[0], r.labels[2]);
        assert_eq!(r.labels[2], r.labels[4]);
        assert_ne!(r.labels[0], r.labels[1]);
        let mut c = r.centres.clone();
        c.sort_by(f32::total_cmp);
        assert_eq!(c, vec![1.0, 11.0]);
        assert!((r.inertia - 4.0).abs() < 1e-9);
        // Seeded.
        assert_eq!(r, kmeans(&x, 1, cfg).unwrap());
    }

    #[test]
    fn a_lloyd_step_moves_centres_to_the_means() {
        // 1-d {0, 2, 3, 9}: of the splits into two contiguous groups, {0} | {2, 3, 9} is not
        // stable (2 is nearer 0 than 14/3), nor {0, 2} | {3, 9} (3 is nearer 1 than 6); only
        // {0, 2, 3} | {9} is: centres 5/3 and 9, inertia (25 + 1 + 16)/9 = 42/9.
        let x = [0.0, 2.0, 3.0, 9.0];
        let r = kmeans(
            &x,
            1,
            KmeansConfig {
                k: 2,
                max_iter: 100,
                n_init: 10,
                seed: 0,
                empty: EmptyClusters::Farthest,
            },
        )
        .unwrap();
        assert!((r.inertia - 42.0 / 9.0).abs() < 1e-5, "{}", r.inertia);
    }

    #[test]
    fn bad_k_is_a_one_line_error() {
        let cfg = |k| KmeansConfig {
            k,
            max_iter: 10,
            n_init: 1,
            seed: 0,
            empty: EmptyClusters::Farthest,
        };
        assert_eq!(
            kmeans(&[0.0, 1.0], 1, cfg(1)).unwrap_err(),
            "k-means: k = 1 (it must be at least 2)"
        );
        assert_eq!(
            kmeans(&[0.0, 1.0], 1, cfg(3)).unwrap_err(),
            "k-means: k = 3 is more clusters than the 2 samples"
        );
    }

    #[test]
    fn an_empty_cluster_splits_a_populated_one_in_two() {
        // Centres 0 (two rows) and 100 (no rows): the empty one takes centre 0 perturbed up,
        // the populated one keeps it perturbed down, and the counts are halved.
        let mut centres = vec![2.0f32, 4.0, 100.0, 100.0];
        let mut counts = vec![6usize, 0];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        split_empty(&mut centres, &mut counts, 2, &mut rng);
        assert_eq!(counts, [3, 3]);
        assert_eq!(centres[2], 2.0 * (1.0 + SPLIT_EPS));
        assert_eq!(centres[3], 4.0 * (1.0 - SPLIT_EPS));
        assert_eq!(centres[0], 2.0 * (1.0 - SPLIT_EPS));
        assert_eq!(centres[1], 4.0 * (1.0 + SPLIT_EPS));
        // Identical rows cannot be split: k-means with k 3 on two spots still ends, with
        // every label a cluster id.
        let x = [0.0f32, 0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 10.0];
        let cfg = KmeansConfig {
            k: 3,
            max_iter: 50,
            n_init: 1,
            seed: 1,
            empty: EmptyClusters::Split,
        };
        let r = kmeans(&x, 1, cfg).unwrap();
        assert!(r.labels.iter().all(|&l| l < 3), "{:?}", r.labels);
        assert!(r.inertia < 1e-3, "{}", r.inertia);
    }
}
