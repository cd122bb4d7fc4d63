//! The fused small-CNN kernels (`nn::fast_cnn`) against the plain candle path: outputs, every
//! gradient, running statistics, thread-count independence and finite differences.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use codats::nn::backbones::SmallCnn;
use codats::nn::{kaiming_normal_init, Backbone, Kernels, Mode};

/// Seeded values in [-2, 2).
fn random(n: usize, seed: u64) -> Vec<f32> {
    use rand::Rng;
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

fn net(channels: usize, kernels: Kernels, seed: u64) -> Result<(VarMap, SmallCnn)> {
    let vm = VarMap::new();
    let net = SmallCnn::new(
        channels,
        false,
        kernels,
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )?;
    kaiming_normal_init(&vm, seed)?;
    // Non-trivial γ, β and running statistics, so that Eval exercises them.
    let data = vm.data().lock().expect("lock");
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    for (i, name) in names.iter().enumerate() {
        let v = &data[name];
        let n = v.elem_count();
        let r = random(n, 100 + i as u64);
        let vals: Vec<f32> = if name.ends_with("running_var")
            || name.ends_with(".weight") && name.starts_with("bn")
        {
            r.iter().map(|x| 1.0 + 0.2 * x).collect()
        } else if name.starts_with("bn") {
            r.iter().map(|x| 0.1 * x).collect()
        } else {
            continue;
        };
        v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu)?)?;
    }
    drop(data);
    Ok((vm, net))
}

fn sorted(vm: &VarMap) -> Vec<(String, Var)> {
    let data = vm.data().lock().expect("lock");
    let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().and_then(|t| t.to_vec1()).expect("values")
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let n: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (d / n.max(1e-30)).sqrt()
}

/// Everything one training step produces: features, (name, gradient) per parameter, the input
/// gradient, and (name, value) of the running statistics afterwards.
struct Step {
    features: Vec<f32>,
    grads: Vec<(String, Vec<f32>)>,
    dx: Vec<f32>,
    running: Vec<(String, Vec<f32>)>,
}

fn step(
    vm: &VarMap,
    net: &SmallCnn,
    x: &[f32],
    shape: (usize, usize, usize, usize),
    mode: Mode,
) -> Result<Step> {
    let xv = Var::from_tensor(&Tensor::from_vec(x.to_vec(), shape, &Device::Cpu)?)?;
    let f = net.forward(xv.as_tensor(), mode)?;
    // A weighted sum: gradients depend on every feature differently.
    let w = Tensor::from_vec(random(f.elem_count(), 77), f.shape(), &Device::Cpu)?;
    let grads = (&f * &w)?.sum_all()?.backward()?;
    let mut out = Vec::new();
    let mut running = Vec::new();
    for (name, v) in sorted(vm) {
        if name.contains("running") {
            running.push((name, values(v.as_tensor())));
        } else {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            out.push((name, values(g)));
        }
    }
    let dx = values(grads.get(xv.as_tensor()).expect("input gradient"));
    Ok(Step {
        features: values(&f),
        grads: out,
        dx,
        running,
    })
}

#[test]
fn fast_small_cnn_matches_the_plain_path_in_train_and_eval() -> Result<()> {
    for (c, s, b) in [
        (1, 28, 3),
        (3, 32, 4),
        (1, 8, 5),
        (1, 4, 3),
        (1, 8, 33),
        (1, 28, 17),
    ] {
        let shape = (b, c, s, s);
        let x = random(b * c * s * s, 5);
        let (vm_f, fast) = net(c, Kernels::Fast, 11)?;
        let (vm_p, plain) = net(c, Kernels::Candle, 11)?;
        let f = step(&vm_f, &fast, &x, shape, Mode::Train)?;
        let p = step(&vm_p, &plain, &x, shape, Mode::Train)?;
        let e = rel(&f.features, &p.features);
        assert!(e < 1e-4, "{c}×{s}: features differ by {e}");
        for ((nf, gf), (np, gp)) in f.grads.iter().zip(&p.grads) {
            assert_eq!(nf, np);
            let e = rel(gf, gp);
            assert!(e < 1e-4, "{c}×{s}: gradient of {nf} differs by {e}");
        }
        let e = rel(&f.dx, &p.dx);
        assert!(e < 1e-4, "{c}×{s}: input gradient differs by {e}");
        assert_eq!(f.running.len(), 10);
        for ((nf, rf), (_, rp)) in f.running.iter().zip(&p.running) {
            let e = rel(rf, rp);
            assert!(e < 1e-4, "{c}×{s}: {nf} differs by {e}");
        }
        // Running statistics moved (Train) and are then used by Eval, on both paths alike.
        let xt = Tensor::from_vec(x.clone(), shape, &Device::Cpu)?;
        let ef = values(&fast.forward(&xt, Mode::Eval)?);
        let ep = values(&plain.forward(&xt, Mode::Eval)?);
        let e = rel(&ef, &ep);
        assert!(e < 1e-4, "{c}×{s}: eval features differ by {e}");
        assert!(
            rel(&ef, &f.features) > 1e-3,
            "eval must use running statistics"
        );
        // TrainKeepStats: same gradients, running statistics untouched.
        let before: Vec<_> = f.running.clone();
        let k = step(&vm_f, &fast, &x, shape, Mode::TrainKeepStats)?;
        assert_eq!(
            k.running, before,
            "TrainKeepStats must not move running statistics"
        );
        assert_eq!(k.features, f.features);
        let k2 = step(&vm_f, &fast, &x, shape, Mode::Train)?;
        assert_ne!(k2.running, before, "Train must move running statistics");
    }
    Ok(())
}

/// Real images have constant backgrounds: equal activations across a max-pool window at
/// positive values. Both paths must route such a window's gradient to one winner (the plain
/// path once used a max reduction, which hands every tied element the full gradient: the two
/// paths agreed on random inputs and drifted apart from the first step on digits).
#[test]
fn fast_small_cnn_matches_the_plain_path_on_images_with_constant_backgrounds() -> Result<()> {
    for (c, s, b) in [(1, 8, 6), (1, 28, 5), (3, 32, 3)] {
        let shape = (b, c, s, s);
        let mut x = random(b * c * s * s, 8);
        // A digit-like frame: everything outside the central half is one background value.
        for (i, v) in x.iter_mut().enumerate() {
            let (y, xx) = ((i / s) % s, i % s);
            if y < s / 4 || y >= 3 * s / 4 || xx < s / 4 || xx >= 3 * s / 4 {
                *v = -0.4;
            }
        }
        let (vm_f, fast) = net(c, Kernels::Fast, 21)?;
        let (vm_p, plain) = net(c, Kernels::Candle, 21)?;
        let f = step(&vm_f, &fast, &x, shape, Mode::Train)?;
        let p = step(&vm_p, &plain, &x, shape, Mode::Train)?;
        let e = rel(&f.features, &p.features);
        assert!(e < 1e-4, "{c}×{s}: features differ by {e}");
        for ((nf, gf), (_, gp)) in f.grads.iter().zip(&p.grads) {
            let e = rel(gf, gp);
            assert!(e < 1e-4, "{c}×{s}: gradient of {nf} differs by {e}");
        }
        let e = rel(&f.dx, &p.dx);
        assert!(e < 1e-4, "{c}×{s}: input gradient differs by {e}");
    }
    Ok(())
}

#[test]
fn fast_small_cnn_is_bitwise_independent_of_the_thread_count() -> Result<()> {
    let (b, c, s) = (20, 1, 28); // more images than one weight-gradient group
    let shape = (b, c, s, s);
    let x = random(b * c * s * s, 6);
    let run = |threads: usize| -> Step {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            let (vm, fast) = net(c, Kernels::Fast, 12).expect("net");
            step(&vm, &fast, &x, shape, Mode::Train).expect("step")
        })
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.features, two.features);
    assert_eq!(one.grads, two.grads);
    assert_eq!(one.dx, two.dx);
    assert_eq!(one.running, two.running);
    Ok(())
}

#[test]
fn fast_small_cnn_gradients_match_finite_differences() -> Result<()> {
    let (b, c, s) = (4, 1, 16);
    let shape = (b, c, s, s);
    let x = random(b * c * s * s, 7);
    let (vm, fast) = net(c, Kernels::Fast, 13)?;
    let xv = Var::from_tensor(&Tensor::from_vec(x.clone(), shape, &Device::Cpu)?)?;
    let w = Tensor::from_vec(random(b * 128, 78), (b, 128), &Device::Cpu)?;
    let loss = |xt: &Tensor| -> Result<Tensor> {
        (fast.forward(xt, Mode::TrainKeepStats)? * &w)?.sum_all()
    };
    let grads = loss(xv.as_tensor())?.backward()?;
    let vars = sorted(&vm);
    let (mut checked, mut missed) = (0, 0);
    let mut targets: Vec<(Var, Vec<f32>)> =
        vec![(xv.clone(), values(grads.get(xv.as_tensor()).expect("dx")))];
    for name in [
        "conv1.weight",
        "conv2.weight",
        "conv5.weight",
        "bn3.weight",
        "bn4.bias",
    ] {
        let v = vars.iter().find(|(n, _)| n == name).expect(name).1.clone();
        let g = values(grads.get(v.as_tensor()).expect(name));
        targets.push((v, g));
    }
    let h = 1e-3f32;
    for (v, g) in &targets {
        let base = values(v.as_tensor());
        for &i in &[0usize, base.len() / 3, base.len() - 1] {
            let at = |d: f32| -> Result<f64> {
                let mut p = base.clone();
                p[i] += d;
                v.set(&Tensor::from_vec(p, v.shape(), &Device::Cpu)?)?;
                Ok(loss(xv.as_tensor())?.to_scalar::<f32>()? as f64)
            };
            let fd = (at(h)? - at(-h)?) / (2.0 * h as f64);
            v.set(&Tensor::from_vec(base.clone(), v.shape(), &Device::Cpu)?)?;
            let an = g[i] as f64;
            let scale = g.iter().map(|x| x.abs() as f64).fold(0.0, f64::max);
            // f32 and ReLU / max-pool kinks: a step can cross a kink, so a few entries may miss.
            if (fd - an).abs() > 2e-2 * scale + 1e-3 {
                eprintln!("entry {i}: analytic {an}, finite difference {fd} (scale {scale})");
                missed += 1;
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
    assert!(
        missed <= 2,
        "{missed} of 18 entries disagree with finite differences"
    );
    Ok(())
}

/// Timing, not a test of behaviour: `cargo test --release --test fast_cnn -- --ignored --nocapture`.
/// Forward + backward (no optimiser) over 960 images 28×28×1 at 2 threads, fast vs plain.
#[test]
#[ignore]
fn time_960_images_forward_backward() -> Result<()> {
    let (b, c, s) = (960, 1, 28);
    let shape = (b, c, s, s);
    let x = Tensor::from_vec(random(b * c * s * s, 8), shape, &Device::Cpu)?;
    let reps: usize = std::env::var("CNN_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let plain_reps: usize = std::env::var("CNN_PLAIN_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool");
    pool.install(|| -> Result<()> {
        for (kernels, n) in [(Kernels::Fast, reps), (Kernels::Candle, plain_reps)] {
            if n == 0 {
                continue;
            }
            let (vm, cnn) = net(c, kernels, 1)?;
            let vars: Vec<Var> = sorted(&vm).into_iter().map(|(_, v)| v).collect();
            let w = Tensor::from_vec(random(b * 128, 79), (b, 128), &Device::Cpu)?;
            let once = || -> Result<f64> {
                let t0 = std::time::Instant::now();
                let g = (cnn.forward(&x, Mode::Train)? * &w)?.sum_all()?.backward()?;
                assert!(g.get(vars[0].as_tensor()).is_some() || vars.len() > 1);
                Ok(t0.elapsed().as_secs_f64() * 1e3)
            };
            once()?; // warm-up (buffer pool, page faults)
            codats::profile::reset();
            let ms: Vec<f64> = (0..n).map(|_| once()).collect::<Result<_>>()?;
            let best = ms.iter().cloned().fold(f64::INFINITY, f64::min);
            let mean = ms.iter().sum::<f64>() / n as f64;
            let phase = |p| codats::profile::total(p).as_secs_f64() * 1e3 / n as f64;
            use codats::profile::Phase;
            println!(
                "{kernels:?} per step: conv {:.0} ms, bn forward {:.0} ms, bn backward {:.0} ms",
                phase(Phase::Conv),
                phase(Phase::BnForward),
                phase(Phase::BnBackward)
            );
            println!("{kernels:?}: fwd+bwd 960×28×28×1 at 2 threads: best {best:.0} ms, mean {mean:.0} ms over {n}");
        }
        Ok(())
    })
}

/// Data input (no gradient wanted, as in training on images): parameter gradients still agree.
#[test]
fn fast_small_cnn_parameter_gradients_agree_when_the_input_needs_none() -> Result<()> {
    let (b, c, s) = (17, 1, 8);
    let x = random(b * c * s * s, 5);
    for fresh in [false, true] {
        let grads = |kernels: Kernels| -> Result<Vec<(String, Vec<f32>)>> {
            let (vm, net) = if fresh {
                let vm = VarMap::new();
                let n = SmallCnn::new(
                    c,
                    false,
                    kernels,
                    VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
                )?;
                kaiming_normal_init(&vm, 11)?;
                (vm, n)
            } else {
                net(c, kernels, 11)?
            };
            let xt = Tensor::from_vec(x.clone(), (b, c, s, s), &Device::Cpu)?;
            let f = net.forward(&xt, Mode::Train)?;
            let w = Tensor::from_vec(random(f.elem_count(), 77), f.shape(), &Device::Cpu)?;
            let g = (&f * &w)?.sum_all()?.backward()?;
            Ok(sorted(&vm)
                .into_iter()
                .filter(|(n, _)| !n.contains("running"))
                .map(|(n, v)| (n, values(g.get(v.as_tensor()).expect("gradient"))))
                .collect())
        };
        for ((n, a), (_, p)) in grads(Kernels::Fast)?.iter().zip(&grads(Kernels::Candle)?) {
            assert!(rel(a, p) < 1e-4, "fresh {fresh} {n}: {}", rel(a, p));
        }
    }
    Ok(())
}
