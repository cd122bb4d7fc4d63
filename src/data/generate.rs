//! A built-in synthetic dataset: sum-of-sines "walk vs run"-style activities whose domains
//! (participants) differ by a controllable shift. Deterministic from a seed; no download.
//!
//! Class `c` oscillates at a base cadence of `1 + 0.8·c` Hz with two harmonics. Domain `d` has its
//! own cadence scale and offset, rotates the first two channels by its own angle, and adds its
//! own amount of noise; `shift` scales all of these differences (0 = identical domains), and
//! `freq_shift`, `freq_scale`, `rotation` and `noise_spread` weight each kind separately.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::{Dataset, DomainData};

/// Sampling rate of the synthetic signals (Hz).
pub const SAMPLE_RATE: f64 = 50.0;

/// Shape and difficulty of the synthetic dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of domains (ids 0..domains).
    pub domains: usize,
    /// Number of classes.
    pub classes: usize,
    /// Channels per window (≥ 2).
    pub channels: usize,
    /// Samples per window.
    pub length: usize,
    /// Windows per class per domain.
    pub windows_per_class: usize,
    /// How different domains are (0 = no shift, 1 = the default); scales every kind of shift below.
    pub shift: f64,
    /// Weight of the per-domain cadence offset (frequency shift, up to ±0.3 Hz × shift).
    #[serde(default = "one")]
    pub freq_shift: f64,
    /// Weight of the per-domain cadence scale (frequency scale, up to ±25 % × shift).
    #[serde(default = "one")]
    pub freq_scale: f64,
    /// Weight of the per-domain rotation of the first two channels (up to ±90° × shift).
    #[serde(default = "one")]
    pub rotation: f64,
    /// Weight of the per-domain extra noise (up to +100 % of `noise` × shift).
    #[serde(default = "one")]
    pub noise_spread: f64,
    /// Base noise standard deviation.
    pub noise: f64,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            domains: 10,
            classes: 3,
            channels: 3,
            length: 128,
            windows_per_class: 60,
            shift: 1.0,
            freq_shift: 1.0,
            freq_scale: 1.0,
            rotation: 1.0,
            noise_spread: 1.0,
            noise: 0.3,
            seed: 0,
        }
    }
}

fn one() -> f64 {
    1.0
}

impl SyntheticConfig {
    /// Checks the settings can generate a dataset (one line naming the bad setting).
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("domains", self.domains, 1),
            ("classes", self.classes, 2),
            ("channels", self.channels, 2),
            ("length", self.length, 1),
            ("windows per class", self.windows_per_class, 1),
        ];
        for (what, v, min) in counts {
            if v < min {
                return Err(format!("synthetic {what} must be at least {min} (got {v})"));
            }
        }
        let weights = [
            ("shift", self.shift),
            ("freq shift", self.freq_shift),
            ("freq scale", self.freq_scale),
            ("rotation", self.rotation),
            ("noise spread", self.noise_spread),
            ("noise", self.noise),
        ];
        for (what, v) in weights {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "synthetic {what} must be a non-negative number (got {v})"
                ));
            }
        }
        if self.freq_scale * self.shift >= 4.0 {
            return Err(
                "synthetic freq scale × shift must stay below 4 (cadence would turn negative)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Generates the dataset described by `cfg`.
pub fn generate(cfg: &SyntheticConfig) -> Dataset {
    let mut domains = Vec::with_capacity(cfg.domains);
    for d in 0..cfg.domains {
        let mut rng =
            ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(d as u64));
        // The domain's own shift.
        let scale = 1.0 + cfg.shift * cfg.freq_scale * rng.random_range(-0.25..0.25);
        let offset = cfg.shift * cfg.freq_shift * rng.random_range(-0.3..0.3);
        let angle = cfg.shift
            * cfg.rotation
            * rng.random_range(-std::f64::consts::FRAC_PI_2..std::f64::consts::FRAC_PI_2);
        let noise_sd =
            cfg.noise * (1.0 + cfg.shift * cfg.noise_spread * rng.random_range(0.0..1.0));
        let noise = Normal::new(0.0, noise_sd.max(1e-12)).expect("finite sd");
        let mut x =
            Vec::with_capacity(cfg.classes * cfg.windows_per_class * cfg.channels * cfg.length);
        let mut y = Vec::new();
        for i in 0..cfg.classes * cfg.windows_per_class {
            let c = i % cfg.classes; // interleaved classes, like a recording of alternating activities
            let f0 = (1.0 + 0.8 * c as f64) * scale + offset;
            let mut ch = vec![vec![0.0f64; cfg.length]; cfg.channels];
            for (j, row) in ch.iter_mut().enumerate() {
                let phase = rng.random_range(0.0..std::f64::consts::TAU);
                let amp2 = 0.3 + 0.2 * ((c + j) % 3) as f64;
                for (t, v) in row.iter_mut().enumerate() {
                    let s = t as f64 / SAMPLE_RATE;
                    let w = std::f64::consts::TAU * f0 * s + phase;
                    *v = w.sin()
                        + amp2 * (2.0 * w).sin()
                        + 0.1 * (j as f64)
                        + noise.sample(&mut rng);
                }
            }
            // Rotate the first two channels (sensor orientation differs per participant).
            let (sa, ca) = angle.sin_cos();
            for t in 0..cfg.length {
                let (a, b) = (ch[0][t], ch[1][t]);
                ch[0][t] = ca * a - sa * b;
                ch[1][t] = sa * a + ca * b;
            }
            for row in ch {
                x.extend(row.into_iter().map(|v| v as f32));
            }
            y.push(c as u32);
        }
        domains.push(DomainData {
            id: d as u32,
            x,
            y,
            valid_lengths: None,
        });
    }
    Dataset {
        name: "synthetic".into(),
        channels: cfg.channels,
        length: cfg.length,
        class_names: (0..cfg.classes).map(|c| format!("activity{c}")).collect(),
        zscore: true,
        domains,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_is_deterministic_and_shaped() {
        let cfg = SyntheticConfig {
            domains: 3,
            windows_per_class: 4,
            ..Default::default()
        };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.domains[2].x, b.domains[2].x);
        assert_eq!(a.domains.len(), 3);
        assert_eq!(a.domains[0].len(), 12);
        assert_eq!(a.domains[0].x.len(), 12 * 3 * 128);
        assert!(a.domains[0].x.iter().all(|v| v.is_finite()));
        let c = generate(&SyntheticConfig { seed: 1, ..cfg });
        assert_ne!(a.domains[0].x, c.domains[0].x);
    }

    /// The strongest frequency (Hz, on a 0.05 Hz grid from 0.3 to 6 Hz) of a window's power summed
    /// over channels (the windows' means removed).
    fn dominant_hz(x: &[f32], channels: usize, length: usize) -> f64 {
        let mut best = (0.0f64, 0.0f64);
        for k in 6..=120 {
            let hz = k as f64 * 0.05;
            let mut p = 0.0;
            for c in 0..channels {
                let row = &x[c * length..(c + 1) * length];
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / length as f64;
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (t, &v) in row.iter().enumerate() {
                    let a = std::f64::consts::TAU * hz * t as f64 / SAMPLE_RATE;
                    re += (v as f64 - mean) * a.cos();
                    im += (v as f64 - mean) * a.sin();
                }
                p += re * re + im * im;
            }
            if p > best.0 {
                best = (p, hz);
            }
        }
        best.1
    }

    /// Accuracy on domain `target` of a nearest-class-mean classifier on the dominant frequency,
    /// fitted on domain `source`: a cheap stand-in for a source-only model.
    fn source_only_accuracy(cfg: &SyntheticConfig, source: usize, target: usize) -> f64 {
        let ds = generate(cfg);
        let w = cfg.channels * cfg.length;
        let feats = |d: &DomainData| -> Vec<f64> {
            d.x.chunks(w)
                .map(|x| dominant_hz(x, cfg.channels, cfg.length))
                .collect()
        };
        let (src, tgt) = (&ds.domains[source], &ds.domains[target]);
        let fs = feats(src);
        let means: Vec<f64> = (0..cfg.classes as u32)
            .map(|c| {
                let v: Vec<f64> = fs
                    .iter()
                    .zip(&src.y)
                    .filter(|(_, &y)| y == c)
                    .map(|(f, _)| *f)
                    .collect();
                v.iter().sum::<f64>() / v.len() as f64
            })
            .collect();
        let ft = feats(tgt);
        let correct = ft
            .iter()
            .zip(&tgt.y)
            .filter(|(f, &y)| {
                let pred = (0..means.len())
                    .min_by(|&a, &b| (*f - means[a]).abs().total_cmp(&(*f - means[b]).abs()))
                    .unwrap_or(0);
                pred as u32 == y
            })
            .count();
        correct as f64 / tgt.len() as f64
    }

    #[test]
    fn synthetic_is_learnable_across_a_small_shift() {
        let small = SyntheticConfig {
            domains: 4,
            windows_per_class: 20,
            shift: 0.2,
            ..Default::default()
        };
        for target in 1..4 {
            let acc = source_only_accuracy(&small, 0, target);
            assert!(
                acc > 0.9,
                "target {target}: accuracy {acc} at shift 0.2 (chance 1/3)"
            );
        }
        // With a large frequency shift the same source-only rule degrades on some target.
        let large = SyntheticConfig {
            shift: 2.5,
            freq_scale: 1.0,
            rotation: 0.0,
            noise_spread: 0.0,
            ..small.clone()
        };
        let worst = (1..4)
            .map(|t| source_only_accuracy(&large, 0, t))
            .fold(1.0f64, f64::min);
        assert!(worst < 0.9, "worst target accuracy {worst} at shift 2.5");
    }

    #[test]
    fn default_weights_leave_the_generator_unchanged() {
        // Weights of 1 multiply exactly, so the defaults reproduce the generator's original output.
        let cfg = SyntheticConfig {
            domains: 2,
            windows_per_class: 2,
            ..Default::default()
        };
        let weighted = SyntheticConfig {
            freq_shift: 1.0,
            freq_scale: 1.0,
            rotation: 1.0,
            noise_spread: 1.0,
            ..cfg.clone()
        };
        assert_eq!(
            generate(&cfg).domains[1].x,
            generate(&weighted).domains[1].x
        );
        let no_rotation = SyntheticConfig {
            rotation: 0.0,
            ..cfg.clone()
        };
        assert_ne!(
            generate(&cfg).domains[1].x,
            generate(&no_rotation).domains[1].x
        );
        assert!(SyntheticConfig {
            domains: 0,
            ..cfg.clone()
        }
        .validate()
        .is_err());
        assert!(SyntheticConfig {
            noise: f64::NAN,
            ..cfg
        }
        .validate()
        .is_err());
    }
}
