//! Probes on frozen features: a linear classifier (multinomial logistic regression on
//! standardised features) and a weighted k-nearest-neighbour vote (cosine similarity,
//! `exp(sim / T)` weights, as InstDisc and DINO). Features are row-major `n × d` `f32`.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Settings of the linear probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearProbeConfig {
    /// Passes over the training features.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// SGD learning rate (momentum 0.9).
    pub lr: f64,
    /// L2 penalty on the weights (not the bias): `λ/2 · ‖W‖²` added to the mean loss.
    pub l2: f64,
    /// Seed of the mini-batch order.
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch: 256,
            lr: 0.1,
            l2: 1e-4,
            seed: 0,
        }
    }
}

/// A trained linear probe: the standardisation of its training features and the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbe {
    mean: Vec<f64>,
    std: Vec<f64>,
    /// `classes × d` weights, row-major.
    w: Vec<f64>,
    b: Vec<f64>,
    d: usize,
    classes: usize,
}

fn check(x: &[f32], n: usize, d: usize) -> Result<(), String> {
    if d == 0 || x.len() != n * d {
        return Err(format!(
            "features hold {} values, not {n} rows of {d} (d must be ≥ 1)",
            x.len()
        ));
    }
    Ok(())
}

impl LinearProbe {
    /// Fits multinomial logistic regression to features `x` (`labels.len()` rows of `d`) and
    /// `labels` (< `classes`): features standardised with the training mean and standard
    /// deviation, zero initial weights, seeded mini-batch SGD with momentum 0.9 for a fixed
    /// number of epochs.
    pub fn fit(
        x: &[f32],
        d: usize,
        labels: &[u32],
        classes: usize,
        cfg: LinearProbeConfig,
    ) -> Result<Self, String> {
        let n = labels.len();
        check(x, n, d)?;
        if n == 0 || classes < 2 {
            return Err(format!(
                "the linear probe needs training samples and ≥ 2 classes (got {n} samples, {classes} classes)"
            ));
        }
        if let Some(&bad) = labels.iter().find(|&&y| y as usize >= classes) {
            return Err(format!("label {bad} is not below the {classes} classes"));
        }
        let mut mean = vec![0.0; d];
        let mut sq = vec![0.0; d];
        for row in x.chunks(d) {
            for (j, &v) in row.iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let nf = n as f64;
        mean.iter_mut().for_each(|m| *m /= nf);
        let std: Vec<f64> = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / nf - m * m).max(0.0).sqrt().max(1e-6))
            .collect();
        let z: Vec<f64> = x
            .chunks(d)
            .flat_map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(j, &v)| (v as f64 - mean[j]) / std[j])
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut p = Self {
            mean,
            std,
            w: vec![0.0; classes * d],
            b: vec![0.0; classes],
            d,
            classes,
        };
        let (mut vw, mut vb) = (vec![0.0; classes * d], vec![0.0; classes]);
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut probs = vec![0.0; classes];
        for _ in 0..cfg.epochs {
            order.shuffle(&mut rng);
            for chunk in order.chunks(cfg.batch.max(1)) {
                let mut gw = vec![0.0; classes * d];
                let mut gb = vec![0.0; classes];
                for &i in chunk {
                    let zi = &z[i * d..(i + 1) * d];
                    p.softmax_into(zi, &mut probs);
                    probs[labels[i] as usize] -= 1.0;
                    for (c, &g) in probs.iter().enumerate() {
                        gb[c] += g;
                        let row = &mut gw[c * d..(c + 1) * d];
                        row.iter_mut().zip(zi).for_each(|(r, &v)| *r += g * v);
                    }
                }
                let m = chunk.len() as f64;
                for k in 0..classes * d {
                    let g = gw[k] / m + cfg.l2 * p.w[k];
                    vw[k] = 0.9 * vw[k] + g;
                    p.w[k] -= cfg.lr * vw[k];
                }
                for c in 0..classes {
                    vb[c] = 0.9 * vb[c] + gb[c] / m;
                    p.b[c] -= cfg.lr * vb[c];
                }
            }
        }
        Ok(p)
    }

    /// Softmax of the logits of standardised features `z` into `out`.
    fn softmax_into(&self, z: &[f64], out: &mut [f64]) {
        for (c, o) in out.iter_mut().enumerate() {
            let row = &self.w[c * self.d..(c + 1) * self.d];
            *o = self.b[c] + row.iter().zip(z).map(|(a, b)| a * b).sum::<f64>();
        }
        let max = out.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let mut s = 0.0;
        out.iter_mut().for_each(|v| {
            *v = (*v - max).exp();
            s += *v;
        });
        out.iter_mut().for_each(|v| *v /= s);
    }

    /// The class probabilities of every row of `x` (`n × d`), one `classes`-long row each.
    pub fn probabilities(&self, x: &[f32]) -> Result<Vec<Vec<f64>>, String> {
        check(x, x.len() / self.d.max(1), self.d)?;
        Ok(x.chunks(self.d)
            .map(|row| {
                let z: Vec<f64> = row
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| (v as f64 - self.mean[j]) / self.std[j])
                    .collect();
                let mut probs = vec![0.0; self.classes];
                self.softmax_into(&z, &mut probs);
                probs
            })
            .collect())
    }

    /// The predicted class of every row of `x` (`n × d`).
    pub fn predict(&self, x: &[f32]) -> Result<Vec<u32>, String> {
        Ok(self.probabilities(x)?.iter().map(|p| argmax(p)).collect())
    }
}

fn argmax(v: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// The kNN probe's settings: InstDisc's and DINO's k 20, T 0.07.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnConfig {
    /// Neighbours that vote.
    pub k: usize,
    /// Temperature of the vote weights `exp(sim / T)`.
    pub temperature: f64,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: 20,
            temperature: 0.07,
        }
    }
}

fn normalised(x: &[f32], d: usize) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let norm = row
                .iter()
                .map(|&v| (v as f64) * (v as f64))
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            row.iter().map(move |&v| v as f64 / norm)
        })
        .collect()
}

/// Classifies every row of `query` by its `k` most cosine-similar rows of `train` (ties in
/// similarity: the lower train index first), each voting for its label with weight
/// `exp(sim / T)`; the class with the largest total wins (ties: the lowest class).
pub fn knn_predict(
    train: &[f32],
    labels: &[u32],
    query: &[f32],
    d: usize,
    classes: usize,
    cfg: KnnConfig,
) -> Result<Vec<u32>, String> {
    check(train, labels.len(), d)?;
    check(query, query.len() / d.max(1), d)?;
    if cfg.k == 0 || labels.is_empty() {
        return Err(format!(
            "the kNN probe needs k ≥ 1 and training samples (k {}, {} samples)",
            cfg.k,
            labels.len()
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&y| y as usize >= classes) {
        return Err(format!("label {bad} is not below the {classes} classes"));
    }
    let t = normalised(train, d);
    let q = normalised(query, d);
    let k = cfg.k.min(labels.len());
    Ok(q.chunks(d)
        .map(|row| {
            let mut sims: Vec<(f64, usize)> = t
                .chunks(d)
                .enumerate()
                .map(|(i, r)| (r.iter().zip(row).map(|(a, b)| a * b).sum::<f64>(), i))
                .collect();
            sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut votes = vec![0.0; classes];
            for &(s, i) in &sims[..k] {
                votes[labels[i] as usize] += (s / cfg.temperature).exp();
            }
            argmax(&votes)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::accuracy;
    use rand::Rng;

    #[test]
    fn knn_votes_by_temperature_weighted_similarity() {
        // Train (2-d): a = (1, 0) class 0; b = (0.8, 0.6) class 1; c = (0.6, 0.8) class 1.
        // Query (1, 0.1)/‖·‖: cosines a 1/1.004988 = 0.99504, b 0.86/1.004988 = 0.85573,
        //   c 0.68/1.004988 = 0.67662.
        // k = 1: a wins → 0.
        // k = 3, T = 0.07: class 0 e^(0.99504/0.07) = e^14.215 ≈ 1.49e6;
        //   class 1 e^12.225 + e^9.666 ≈ 2.04e5 + 1.58e4 — class 0.
        // k = 3, T = 10 (nearly equal weights): class 0 e^0.0995 ≈ 1.105;
        //   class 1 e^0.0856 + e^0.0677 ≈ 1.089 + 1.070 = 2.159 — class 1.
        let train = [1.0, 0.0, 0.8, 0.6, 0.6, 0.8];
        let labels = [0, 1, 1];
        let q = [1.0, 0.1];
        let run = |k, temperature| {
            knn_predict(&train, &labels, &q, 2, 2, KnnConfig { k, temperature }).unwrap()[0]
        };
        assert_eq!(run(1, 0.07), 0);
        assert_eq!(run(3, 0.07), 0);
        assert_eq!(run(3, 10.0), 1);
        // Cosine, not distance: a scaled copy of b is as near as b.
        let train = [10.0, 0.0, 0.0, 0.1];
        assert_eq!(
            knn_predict(&train, &[0, 1], &[0.1, 1.0], 2, 2, KnnConfig::default()).unwrap(),
            vec![1]
        );
        assert!(knn_predict(&train, &[0, 1], &[0.1], 2, 2, KnnConfig::default()).is_err());
    }

    #[test]
    fn the_linear_probe_separates_a_separable_toy_set() {
        // Three Gaussian blobs in 5-d, centres 4 apart on the first three axes, σ 1, plus
        // two pure-noise features of scale 100 (standardisation must cope): the Bayes
        // accuracy is > 99 %, a linear boundary suffices.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut gauss = || {
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        };
        let mut make = |n: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let c = (i % 3) as u32;
                for j in 0..3 {
                    let centre = if j == c as usize { 4.0 } else { 0.0 };
                    x.push((centre + gauss()) as f32);
                }
                x.push((100.0 * gauss()) as f32);
                x.push((100.0 * gauss()) as f32);
                y.push(c);
            }
            (x, y)
        };
        let (xt, yt) = make(600);
        let (xv, yv) = make(300);
        let cfg = LinearProbeConfig {
            epochs: 20,
            batch: 32,
            seed: 1,
            ..Default::default()
        };
        let probe = LinearProbe::fit(&xt, 5, &yt, 3, cfg).unwrap();
        let acc = accuracy(&yv, &probe.predict(&xv).unwrap());
        assert!(acc > 0.97, "{acc}");
        // Seeded: the same fit twice.
        assert_eq!(probe, LinearProbe::fit(&xt, 5, &yt, 3, cfg).unwrap());
        // A label out of range is a one-line error.
        assert_eq!(
            LinearProbe::fit(&xt[..5], 5, &[3], 3, cfg).unwrap_err(),
            "label 3 is not below the 3 classes"
        );
    }

    #[test]
    fn one_linear_probe_step_is_the_hand_computed_gradient_step() {
        // Two samples in 1-d, x = −1 (class 0), +1 (class 1): standardised they stay ±1.
        // W = 0 → softmax (½, ½). Gradient of the mean CE: ∂W_c = mean((p_c − y_c) x):
        //   class 0: ((½ − 1)(−1) + (½)(1)) / 2 = ½; class 1: −½. Biases: 0.
        // One full-batch step at lr 0.1 (momentum starts at 0, L2 0): W = (−0.05, 0.05).
        let cfg = LinearProbeConfig {
            epochs: 1,
            batch: 2,
            lr: 0.1,
            l2: 0.0,
            seed: 0,
        };
        let p = LinearProbe::fit(&[-1.0, 1.0], 1, &[0, 1], 2, cfg).unwrap();
        assert!(
            (p.w[0] + 0.05).abs() < 1e-12 && (p.w[1] - 0.05).abs() < 1e-12,
            "{:?}",
            p.w
        );
        assert!(p.b.iter().all(|b| b.abs() < 1e-12));
        assert_eq!(p.predict(&[-3.0, 0.5]).unwrap(), vec![0, 1]);
    }
}
