//! The image backbones: shapes, batch-norm modes, input checks and seeded initialisation.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use codats::nn::backbones::{SmallCnn, Wrn28_2};
use codats::nn::{kaiming_normal_init, Backbone, Mode};

/// Seeded values in [-2, 2).
fn random(shape: (usize, usize, usize, usize), seed: u64) -> Result<Tensor> {
    use rand::Rng;
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

fn small(channels: usize, gct: bool, seed: u64) -> Result<(VarMap, SmallCnn)> {
    let vm = VarMap::new();
    let net = SmallCnn::new(
        channels,
        gct,
        codats::nn::Kernels::Candle,
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )?;
    kaiming_normal_init(&vm, seed)?;
    Ok((vm, net))
}

fn var_values(vm: &VarMap) -> Vec<(String, Vec<f32>)> {
    let data = vm.data().lock().expect("lock");
    let mut v: Vec<_> = data
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .expect("values"),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn running(vm: &VarMap) -> Vec<(String, Vec<f32>)> {
    var_values(vm)
        .into_iter()
        .filter(|(k, _)| k.contains("running"))
        .collect()
}

#[test]
fn small_cnn_features_for_28_and_32_pixel_images_and_8x8_digits() -> Result<()> {
    for (c, s) in [(1, 28), (3, 32), (1, 8)] {
        let (_, net) = small(c, false, 1)?;
        let x = random((4, c, s, s), 0)?;
        for mode in [Mode::Train, Mode::TrainKeepStats, Mode::Eval] {
            assert_eq!(net.forward(&x, mode)?.dims(), &[4, 128]);
        }
        assert_eq!(net.feature_dim(), 128);
    }
    Ok(())
}

#[test]
fn modes_treat_running_statistics_as_documented() -> Result<()> {
    for gct in [false, true] {
        let (vm, net) = small(3, gct, 2)?;
        let x = random((4, 3, 8, 8), 0)?;
        let before = running(&vm);
        let eval0 = net.forward(&x, Mode::Eval)?;
        net.forward(&x, Mode::TrainKeepStats)?;
        assert_eq!(
            running(&vm),
            before,
            "TrainKeepStats must leave running stats alone"
        );
        net.forward(&x, Mode::Eval)?;
        assert_eq!(running(&vm), before, "Eval must leave running stats alone");
        let t1 = net.forward(&x, Mode::Train)?;
        let t2 = net.forward(&x, Mode::TrainKeepStats)?;
        assert_ne!(running(&vm), before, "Train must update running stats");
        // Batch statistics do not depend on the running ones; eval output does.
        let d = (t1 - t2)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "training outputs differ by {d}");
        let eval1 = net.forward(&x, Mode::Eval)?;
        let d = (eval0 - eval1)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(
            d > 0.0,
            "eval output should follow the updated running stats"
        );
    }
    Ok(())
}

#[test]
fn first_running_update_follows_pytorch_momentum_and_unbiased_variance() -> Result<()> {
    let (vm, net) = small(1, false, 3)?;
    let x = random((4, 1, 8, 8), 0)?;
    net.forward(&x, Mode::Train)?;
    // conv1's output per channel, over B·H·W = 256 values: running = 0.999·init + 0.001·batch.
    let w = vm.get(
        (32, 1, 3, 3),
        "conv1.weight",
        candle_nn::Init::Const(0.0),
        DType::F32,
        &Device::Cpu,
    )?;
    let z = candle_core::Tensor::conv2d(&x, &w, 1, 1, 1, 1)?
        .transpose(0, 1)?
        .flatten_from(1)?;
    let mean = z.mean(1)?.to_vec1::<f32>()?;
    let n = z.dim(1)? as f32;
    let var = z
        .broadcast_sub(&z.mean_keepdim(1)?)?
        .sqr()?
        .sum(1)?
        .to_vec1::<f32>()?;
    let rv = running(&vm);
    let (rm, rvar) = (
        &rv.iter()
            .find(|(k, _)| k == "bn1.running_mean")
            .expect("rm")
            .1,
        &rv.iter()
            .find(|(k, _)| k == "bn1.running_var")
            .expect("rv")
            .1,
    );
    for i in 0..32 {
        assert!((rm[i] - 0.001 * mean[i]).abs() < 1e-6);
        assert!((rvar[i] - (0.999 + 0.001 * var[i] / (n - 1.0))).abs() < 1e-6);
    }
    Ok(())
}

#[test]
fn gradients_reach_every_parameter_and_a_variable_input() -> Result<()> {
    let (vm, net) = small(3, true, 4)?;
    let x = candle_core::Var::from_tensor(&random((4, 3, 8, 8), 0)?)?;
    let grads = net
        .forward(x.as_tensor(), Mode::Train)?
        .sqr()?
        .sum_all()?
        .backward()?;
    assert!(grads.get(x.as_tensor()).is_some(), "input gradient");
    let data = vm.data().lock().expect("lock");
    for (name, var) in data.iter() {
        // Every trained variable is on the graph (a fresh GCT's α gets a zero gradient, but one).
        if name.contains("running") {
            continue;
        }
        assert!(
            grads.get(var.as_tensor()).is_some(),
            "no gradient for {name}"
        );
    }
    Ok(())
}

#[test]
fn bad_shapes_are_clear_errors() -> Result<()> {
    let (_, net) = small(1, false, 5)?;
    let msg = |x: Tensor| {
        net.forward(&x, Mode::Train)
            .expect_err("must fail")
            .to_string()
    };
    assert!(msg(random((2, 1, 30, 28), 0)?).contains("multiples of 4"));
    assert!(msg(random((2, 3, 28, 28), 0)?).contains("input channels"));
    assert!(msg(Tensor::zeros((2, 1, 28), DType::F32, &Device::Cpu)?).contains("[B, C, H, W]"));
    Ok(())
}

#[test]
fn initialisation_is_deterministic_from_the_seed() -> Result<()> {
    let (a, _) = small(3, false, 7)?;
    let (b, _) = small(3, false, 7)?;
    let (c, _) = small(3, false, 8)?;
    assert_eq!(var_values(&a), var_values(&b));
    assert_ne!(var_values(&a), var_values(&c));
    // He-normal fan-out: conv3 [64, 32, 3, 3] has std √(2 / 576).
    let w = &var_values(&a)
        .into_iter()
        .find(|(k, _)| k == "conv3.weight")
        .expect("conv3")
        .1;
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!(
        (std / (2.0f32 / 576.0).sqrt() - 1.0).abs() < 0.05,
        "std {std}"
    );
    Ok(())
}

#[test]
fn wrn_28_2_has_the_literature_shape_and_modes() -> Result<()> {
    for gct in [false, true] {
        let vm = VarMap::new();
        let net = Wrn28_2::new(
            3,
            gct,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )?;
        kaiming_normal_init(&vm, 1)?;
        let convs = var_values(&vm)
            .iter()
            .filter(|(k, v)| k.ends_with("weight") && v.len() > 128)
            .count();
        // stem + 12 blocks × 2 convs + 3 shortcuts = 28 convolutions.
        assert_eq!(convs, 28);
        let x = random((2, 3, 32, 32), 0)?;
        let before = running(&vm);
        assert_eq!(net.forward(&x, Mode::TrainKeepStats)?.dims(), &[2, 128]);
        assert_eq!(running(&vm), before);
        let f = net.forward(&x, Mode::Train)?;
        assert_ne!(running(&vm), before);
        assert_eq!(net.forward(&x, Mode::Eval)?.dims(), &[2, 128]);
        let grads = f.sqr()?.sum_all()?.backward()?;
        let data = vm.data().lock().expect("lock");
        let missing: Vec<_> = data
            .iter()
            .filter(|(k, v)| !k.contains("running") && grads.get(v.as_tensor()).is_none())
            .map(|(k, _)| k.clone())
            .collect();
        assert!(missing.is_empty(), "no gradient for {missing:?}");
    }
    Ok(())
}

#[test]
fn wrn_28_2_stochastic_depth_skips_identity_blocks_per_sample() -> Result<()> {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    let vm = VarMap::new();
    let net = Wrn28_2::new(
        1,
        false,
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )?;
    kaiming_normal_init(&vm, 2)?;
    let x = random((3, 1, 16, 16), 4)?;
    let plain = |m| -> Result<Vec<f32>> { net.forward(&x, m)?.flatten_all()?.to_vec1() };
    let noisy = |m, survival, seed| -> Result<(Vec<f32>, ChaCha8Rng)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let f = net.forward_stochastic_depth(&x, m, survival, &mut rng)?;
        Ok((f.flatten_all()?.to_vec1()?, rng))
    };
    // Evaluation, and survival 1, are the plain network and draw nothing.
    let untouched = ChaCha8Rng::seed_from_u64(9);
    let (f, rng) = noisy(Mode::Eval, 0.5, 9)?;
    assert_eq!((f, rng), (plain(Mode::Eval)?, untouched.clone()));
    let (f, rng) = noisy(Mode::TrainKeepStats, 1.0, 9)?;
    assert_eq!((f, rng), (plain(Mode::TrainKeepStats)?, untouched.clone()));
    // In training: one draw per sample for each of the 9 blocks whose shortcut is the
    // identity (12 blocks less the 3 that change width), and the features change.
    let (f, rng) = noisy(Mode::TrainKeepStats, 0.5, 9)?;
    let mut expected = untouched;
    for _ in 0..9 * 3 {
        let _: f64 = expected.random();
    }
    assert_eq!(rng, expected);
    assert_ne!(f, plain(Mode::TrainKeepStats)?);
    // Survival 0.05 drops (nearly) every identity block: each sample's features differ from
    // the plain network's, and the network still has the stem, shortcuts and final BN.
    let (f, _) = noisy(Mode::TrainKeepStats, 0.05, 3)?;
    assert_eq!(f.len(), 3 * 128);
    assert!(f.iter().all(|v| v.is_finite()));
    Ok(())
}
