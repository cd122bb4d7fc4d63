//! Importance-weighted validation for label-free model selection under domain shift.
//!
//! A source validation window `x` with loss `l(x)` estimates the *target* risk once weighted by
//! the density ratio `w(x) = p_target(x) / p_source(x)`. The ratio comes from a domain
//! classifier on the network's features, as in Deep Embedded Validation (You, Wang, Cao, Long &
//! Jordan, ICML 2019) and AdaTime: `w(x) = P(target | x) / P(source | x) · N_s / N_t`.
//!
//! * IWV (Sugiyama, Krauledat & Müller 2007): the weighted mean `mean(w · l)`.
//! * DEV: the same with the weights as a control variate (their expectation is 1):
//!   `mean(w · l) + η · mean(w) − η`, `η = −Cov(w · l, w) / Var(w)` (sample covariance and
//!   variance, as the authors' `get_dev_risk`).
//!
//! The domain classifier is the linear probe ([`super::probe::LinearProbe`], standardised
//! features, seeded) with its L2 penalty chosen from [`DECAYS`] by accuracy on a seeded 20 %
//! hold-out (the authors sweep the decay of an MLP the same way). Probabilities are clamped to
//! `[CLAMP, 1 − CLAMP]` so that one window the classifier is certain about cannot weigh
//! infinitely.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::probe::{LinearProbe, LinearProbeConfig};

/// L2 penalties tried for the domain classifier, strongest first (ties keep the first).
pub const DECAYS: [f64; 4] = [1e-1, 1e-2, 1e-3, 1e-4];

/// Probabilities of the domain classifier are kept in `[CLAMP, 1 − CLAMP]`.
pub const CLAMP: f64 = 1e-3;

/// Passes of the domain classifier over its training features.
pub const EPOCHS: usize = 30;

/// Density-ratio weights `p_t(x) / p_s(x)` of the rows of `query`, from a domain classifier
/// fit on `source` (rows of the source domains) against `target` (unlabelled target rows);
/// all `d` columns wide, row-major. Seeded by `seed`.
pub fn density_ratios(
    source: &[f32],
    target: &[f32],
    query: &[f32],
    d: usize,
    seed: u64,
) -> Result<Vec<f64>, String> {
    if d == 0 || source.len() % d != 0 || target.len() % d != 0 || query.len() % d != 0 {
        return Err(format!("features are not rows of {d}"));
    }
    let (ns, nt) = (source.len() / d, target.len() / d);
    if ns < 2 || nt < 2 {
        return Err(format!(
            "the domain classifier needs at least 2 source and 2 target windows (got {ns} and {nt})"
        ));
    }
    // Label 0: source, 1: target.
    let mut rows: Vec<(usize, u32)> = (0..ns).map(|i| (i, 0)).collect();
    rows.extend((0..nt).map(|i| (ns + i, 1)));
    let row = |i: usize| -> &[f32] {
        if i < ns {
            &source[i * d..(i + 1) * d]
        } else {
            &target[(i - ns) * d..(i - ns + 1) * d]
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rows.shuffle(&mut rng);
    let n_held = (rows.len() / 5).max(1);
    let (held, fit) = rows.split_at(n_held);
    let gather = |part: &[(usize, u32)]| -> (Vec<f32>, Vec<u32>) {
        let mut x = Vec::with_capacity(part.len() * d);
        part.iter().for_each(|&(i, _)| x.extend_from_slice(row(i)));
        (x, part.iter().map(|&(_, y)| y).collect())
    };
    let (fit_x, fit_y) = gather(fit);
    let (held_x, held_y) = gather(held);
    let mut best: Option<(f64, LinearProbe)> = None;
    for (k, &l2) in DECAYS.iter().enumerate() {
        let cfg = LinearProbeConfig {
            epochs: EPOCHS,
            l2,
            seed: seed.wrapping_add(1 + k as u64),
            ..Default::default()
        };
        let probe = LinearProbe::fit(&fit_x, d, &fit_y, 2, cfg)?;
        let pred = probe.predict(&held_x)?;
        let acc =
            pred.iter().zip(&held_y).filter(|(a, b)| a == b).count() as f64 / held_y.len() as f64;
        if best.as_ref().is_none_or(|(b, _)| acc > *b) {
            best = Some((acc, probe));
        }
    }
    let (_, probe) = best.expect("DECAYS is not empty");
    let ratio = ns as f64 / nt as f64;
    Ok(probe
        .probabilities(query)?
        .into_iter()
        .map(|p| {
            let t = p[1].clamp(CLAMP, 1.0 - CLAMP);
            t / (1.0 - t) * ratio
        })
        .collect())
}

/// IWV: the importance-weighted mean loss `mean(w · l)` (0 for no windows).
pub fn iwv_risk(weights: &[f64], losses: &[f64]) -> f64 {
    assert_eq!(weights.len(), losses.len());
    if weights.is_empty() {
        return 0.0;
    }
    weights.iter().zip(losses).map(|(w, l)| w * l).sum::<f64>() / weights.len() as f64
}

/// DEV: [`iwv_risk`] with the weights as a control variate, `mean(w·l) + η·mean(w) − η` with
/// `η = −Cov(w·l, w) / Var(w)` (sample statistics, n − 1); with fewer than two windows or
/// constant weights (no variance to use), the IWV risk.
pub fn dev_risk(weights: &[f64], losses: &[f64]) -> f64 {
    assert_eq!(weights.len(), losses.len());
    let n = weights.len();
    if n < 2 {
        return iwv_risk(weights, losses);
    }
    let wl: Vec<f64> = weights.iter().zip(losses).map(|(w, l)| w * l).collect();
    let nf = n as f64;
    let mean_wl = wl.iter().sum::<f64>() / nf;
    let mean_w = weights.iter().sum::<f64>() / nf;
    let cov = wl
        .iter()
        .zip(weights)
        .map(|(a, w)| (a - mean_wl) * (w - mean_w))
        .sum::<f64>()
        / (nf - 1.0);
    let var = weights.iter().map(|w| (w - mean_w).powi(2)).sum::<f64>() / (nf - 1.0);
    if var <= 0.0 {
        return mean_wl;
    }
    let eta = -cov / var;
    mean_wl + eta * mean_w - eta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iwv_and_dev_risks_equal_hand_computed_values() {
        // w = (1, 2, 3), l = (0.5, 0.25, 1): w·l = (0.5, 0.5, 3), mean 4/3, mean w 2.
        // Cov(w·l, w) = ((−5/6)(−1) + (−5/6)(0) + (5/3)(1)) / 2 = 5/4; Var(w) = 1; η = −5/4.
        // DEV = 4/3 − 5/4 · 2 + 5/4 = 4/3 − 5/4 = 1/12.
        let (w, l) = ([1.0, 2.0, 3.0], [0.5, 0.25, 1.0]);
        assert!((iwv_risk(&w, &l) - 4.0 / 3.0).abs() < 1e-12);
        assert!((dev_risk(&w, &l) - 1.0 / 12.0).abs() < 1e-12);
        // Unit weights (no shift): both are the plain mean loss.
        let ones = [1.0; 3];
        assert!((iwv_risk(&ones, &l) - 7.0 / 12.0).abs() < 1e-12);
        assert!((dev_risk(&ones, &l) - 7.0 / 12.0).abs() < 1e-12);
        assert_eq!(iwv_risk(&[], &[]), 0.0);
    }

    /// Features of two unit Gaussian clouds 1 apart on the first axis, where the true ratio is
    /// `exp(x₁ − 1/2)` (a logistic model is exact): windows near the target's cloud get large
    /// weights, those near the source's small ones, close to the truth, and the weights of the
    /// source rows average about 1 (the density ratio's expectation under the source).
    #[test]
    fn density_ratios_weigh_source_windows_by_their_likeness_to_the_target() {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut normal = move || -> f32 {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        };
        let mut cloud = |centre: f32, n: usize| -> Vec<f32> {
            (0..n).flat_map(|_| [centre + normal(), normal()]).collect()
        };
        let source = cloud(0.0, 1000);
        let target = cloud(1.0, 500);
        let query = [0.0f32, 0.0, 1.0, 0.0, -1.0, 0.0];
        let w = density_ratios(&source, &target, &query, 2, 0).unwrap();
        assert!(w[1] > 2.0 * w[0] && w[0] > 2.0 * w[2], "{w:?}");
        // The truth at x₁ = 0, 1, −1: e^−½ 0.61, e^½ 1.65, e^−1.5 0.22, within a factor 1.7
        // (the chosen L2 penalty shrinks the estimate towards 1: 0.71, 1.45, 0.35 here; a
        // missing prior correction N_s / N_t alone would be off by 2).
        for (got, want) in w.iter().zip([0.607f64, 1.649, 0.223]) {
            assert!((got / want).ln().abs() < 0.55, "{w:?}");
        }
        let on_source = density_ratios(&source, &target, &source, 2, 0).unwrap();
        let mean = on_source.iter().sum::<f64>() / on_source.len() as f64;
        assert!((0.8..1.25).contains(&mean), "mean weight {mean}");
        // Seeded: the same weights again.
        assert_eq!(density_ratios(&source, &target, &query, 2, 0).unwrap(), w);
        let e = density_ratios(&source[..2], &target, &query, 2, 0).unwrap_err();
        assert!(e.contains("2 source and 2 target"), "{e}");
    }
}
