//! `codats bench --task ssl`: the image semi-supervised step of `../shared/anchors/torch_ssl_step.py`
//! (FixMatch: one forward over [labelled weak B, unlabelled weak μB, unlabelled strong μB], CE +
//! masked pseudo-label CE, SGD Nesterov + weight decay, EMA update; or `supervised`: the labelled
//! part alone) on the small CNN, timed beside the anchor in paired rounds. As in the anchor, the
//! inputs are random and already augmented: the model step is timed; the augmentation that would
//! make those views is timed apart (`augment` in phases_ms).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{peak_rss_mib, Measurement};
use crate::config::images::{ImageBackbone, ImageOptions};
use crate::data::augment::{augment_batch, AugmentConfig, ImageShape, Strength};
use crate::methods::{self, Batch, ImageSetup, MethodKind, MethodSetup, Slice, StepContext};
use crate::nn::Kernels;
use crate::train::{train_step, Trainer};

/// Classes of the benchmark's head (the anchor's default).
pub const CLASSES: usize = 10;

/// One image-step measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SslOne {
    /// `fixmatch` or `supervised`.
    pub fixmatch: bool,
    /// Image side (28 or 32).
    pub size: usize,
    /// Channels (1 or 3).
    pub channels: usize,
    /// Labelled images per step (B).
    pub batch: usize,
    /// Unlabelled per labelled (μ).
    pub mu: usize,
    /// Threads.
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
}

impl SslOne {
    fn method(&self) -> &'static str {
        if self.fixmatch {
            "fixmatch"
        } else {
            "supervised"
        }
    }

    /// Images through the network per step.
    pub fn images(&self) -> usize {
        if self.fixmatch {
            self.batch * (1 + 2 * self.mu)
        } else {
            self.batch
        }
    }
}

/// 2 × multiply-adds of one image through the small CNN's convolutions: (forward, weight
/// gradients, input gradients of layers 2–5).
pub fn small_cnn_flops(size: usize, channels: usize) -> (f64, f64, f64) {
    let mut side = size;
    let mut c_in = channels;
    let mut per = Vec::new();
    for &(c_out, pool) in &crate::nn::backbones::SMALL_CNN_LAYERS {
        per.push(2.0 * (side * side * 9 * c_in * c_out) as f64);
        c_in = c_out;
        if pool {
            side /= 2;
        }
    }
    let fwd: f64 = per.iter().sum();
    (fwd, fwd, fwd - per[0])
}

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Measures one configuration in this process.
pub fn run_one(o: SslOne) -> Result<Measurement> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let shape = ImageShape {
        channels: o.channels,
        height: o.size,
        width: o.size,
    };
    let kind = MethodKind::parse(o.method()).expect("registered");
    let setup = MethodSetup {
        channels: o.channels,
        classes: CLASSES,
        n_sources: 1,
        given_proportions: None,
        target_train_proportions: None,
        ws_noise: None,
        ws: false,
        seed: 0,
        kernels: Kernels::Fast,
        gct: false,
        backbone: Default::default(),
        params: kind
            .resolve_params(&Default::default())
            .map_err(anyhow::Error::msg)?,
        image: Some(ImageSetup {
            shape,
            backbone: ImageBackbone::SmallCnn,
            gct: false,
            bn_momentum: crate::nn::layers::SSL_BN_MOMENTUM,
            pool_size: usize::MAX,
            teacher: None,
        }),
    };
    let varmap = VarMap::new();
    let mut method = methods::build(kind, &setup, &varmap)?;
    crate::nn::glorot_init(&varmap, 0)?;
    crate::nn::kaiming_normal_init(&varmap, 1)?;
    method.after_init(&varmap)?;
    // The anchor's SGD: lr 0.03, Nesterov 0.9, weight decay 5e-4 (constant rate).
    let recipe = ImageOptions::fixmatch(1);
    let mut groups = Trainer::optimisers_for(0.03, Some(&recipe), &varmap, method.as_ref());
    let (b, u) = (o.batch, o.batch * o.mu);
    let dims = |n: usize| (n, o.channels, o.size, o.size);
    let len = shape.len();
    let tensor = |n: usize, rng: &mut ChaCha8Rng| {
        Tensor::from_vec(random(n * len, rng), dims(n), &Device::Cpu)
    };
    let lb = tensor(b, &mut rng)?;
    let y = Tensor::from_vec(
        (0..b as u32).map(|i| i % CLASSES as u32).collect(),
        b,
        &Device::Cpu,
    )?;
    let batch = Batch {
        sources: vec![Slice {
            x: lb.clone(),
            y: Some(y),
            idx: (0..b).collect(),
            views: vec![lb],
        }],
        target: if o.fixmatch {
            let (w, s) = (tensor(u, &mut rng)?, tensor(u, &mut rng)?);
            Some(Slice {
                x: w.clone(),
                y: None,
                idx: (0..u).collect(),
                views: vec![w, s],
            })
        } else {
            None
        },
    };
    let mut step_rng = ChaCha8Rng::seed_from_u64(1);
    let total = o.warmup + o.steps.max(1);
    let mut step = |i: usize| -> Result<()> {
        let mut ctx = StepContext {
            step: i,
            total_steps: total,
            rng: &mut step_rng,
        };
        train_step(method.as_mut(), &mut groups, &batch, &mut ctx)?;
        method.after_step(&varmap, &mut ctx)?;
        Ok(())
    };
    for i in 0..o.warmup {
        step(i)?;
    }
    crate::profile::reset();
    let t0 = Instant::now();
    for i in 0..o.steps.max(1) {
        step(o.warmup + i)?;
    }
    let steps = o.steps.max(1) as f64;
    let dt = t0.elapsed().as_secs_f64() / steps;
    let per_step = |p| crate::profile::total(p).as_secs_f64() / steps;
    let mut phases: std::collections::BTreeMap<String, f64> = crate::profile::Phase::ALL
        .iter()
        .map(|&p| (p.name().to_string(), 1e3 * per_step(p)))
        .collect();
    // The views the step's inputs stand for: weak views of the B + μB images, strong of the μB.
    let pixels: Vec<f32> = (0..(b + u) * len).map(|_| rng.random::<f32>()).collect();
    let ids: Vec<u64> = (0..(b + u) as u64).collect();
    let aug = AugmentConfig::default();
    let t0 = Instant::now();
    let weak_n = if o.fixmatch { b + u } else { b };
    augment_batch(
        &pixels[..weak_n * len],
        shape,
        &ids[..weak_n],
        0,
        0,
        Strength::Weak,
        &aug,
    );
    if o.fixmatch {
        augment_batch(
            &pixels[b * len..],
            shape,
            &ids[b..],
            0,
            0,
            Strength::Strong,
            &aug,
        );
    }
    phases.insert("augment".into(), 1e3 * t0.elapsed().as_secs_f64());
    let conv = per_step(crate::profile::Phase::Conv);
    let (f, w, d) = small_cnn_flops(o.size, o.channels);
    let images = o.images();
    Ok(Measurement {
        framework: "codats".into(),
        what: format!("ssl_{}", o.method()),
        kernels: Some("fast".into()),
        batch: images,
        sources: 0,
        threads: o.threads,
        ms_per_step: dt * 1e3,
        samples_per_s: images as f64 / dt,
        gflops: Some((f + w + d) * images as f64 / dt / 1e9),
        conv_share: (conv > 0.0).then(|| conv / dt),
        peak_rss_mib: peak_rss_mib(),
        phases_ms: Some(phases),
        rounds_ms: None,
    })
}

/// Runs one configuration in a child process (its own thread pool and peak memory).
pub fn spawn_one(exe: &Path, o: SslOne) -> Result<Measurement> {
    let out = Command::new(exe)
        .args([
            "bench",
            "--task",
            "ssl",
            "--one-ssl",
            "--method",
            o.method(),
        ])
        .args([
            "--size",
            &o.size.to_string(),
            "--channels",
            &o.channels.to_string(),
        ])
        .args(["--batch", &o.batch.to_string(), "--mu", &o.mu.to_string()])
        .args([
            "--threads",
            &o.threads.to_string(),
            "--steps",
            &o.steps.to_string(),
        ])
        .args(["--warmup", &o.warmup.to_string()])
        .env("RAYON_NUM_THREADS", o.threads.to_string())
        .output()
        .context("running a benchmark child process")?;
    if !out.status.success() {
        bail!(
            "benchmark child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("parsing benchmark output {line:?}"))
}

/// The PyTorch anchor of the image step.
pub fn default_anchor() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/anchors/torch_ssl_step.py")
}

/// Runs `torch_ssl_step.py` with the same settings under `python`.
pub fn run_torch(python: &Path, script: &Path, o: SslOne) -> Result<Measurement> {
    #[derive(Deserialize)]
    struct TorchLine {
        images_per_step: usize,
        ms_per_step: f64,
        images_per_s: f64,
    }
    if !script.exists() {
        bail!(
            "PyTorch anchor not found at {} (pass --anchor PATH)",
            script.display()
        );
    }
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--method", o.method(), "--batch", &o.batch.to_string()])
        .args(["--mu", &o.mu.to_string(), "--size", &o.size.to_string()])
        .args(["--channels", &o.channels.to_string()])
        .args([
            "--threads",
            &o.threads.to_string(),
            "--steps",
            &o.steps.to_string(),
        ])
        .args(["--warmup", &o.warmup.max(1).to_string()])
        .env("OMP_NUM_THREADS", o.threads.to_string());
    let (stdout, rss) = super::run_measured(cmd)?;
    let line = stdout.lines().last().unwrap_or_default();
    let t: TorchLine =
        serde_json::from_str(line).with_context(|| format!("parsing anchor output {line:?}"))?;
    Ok(Measurement {
        framework: "pytorch".into(),
        what: format!("ssl_{}", o.method()),
        kernels: None,
        batch: t.images_per_step,
        sources: 0,
        threads: o.threads,
        ms_per_step: t.ms_per_step,
        samples_per_s: t.images_per_s,
        gflops: None,
        conv_share: None,
        peak_rss_mib: Some(rss),
        phases_ms: None,
        rounds_ms: None,
    })
}

/// Paired rounds: codats and (when `torch` is given) the anchor in turn, who goes first
/// alternating. Returns the median rounds and each round's codats/PyTorch images-per-second ratio.
pub fn paired_rounds(
    exe: &Path,
    o: SslOne,
    rounds: u32,
    torch: Option<(&Path, &Path)>,
) -> Result<(Option<Measurement>, Option<Measurement>, Vec<f64>)> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let anchor = |theirs: &mut Vec<Measurement>| -> Result<Option<f64>> {
            let Some((py, script)) = torch else {
                return Ok(None);
            };
            let m = run_torch(py, script, o)?;
            let s = m.samples_per_s;
            theirs.push(m);
            Ok(Some(s))
        };
        let first = if round % 2 == 1 {
            anchor(&mut theirs)?
        } else {
            None
        };
        let m = spawn_one(exe, o)?;
        let mine = m.samples_per_s;
        ours.push(m);
        let t = if round % 2 == 1 {
            first
        } else {
            anchor(&mut theirs)?
        };
        if let Some(t) = t {
            ratios.push(mine / t);
        }
    }
    Ok((
        Measurement::median_of(ours),
        Measurement::median_of(theirs),
        ratios,
    ))
}
