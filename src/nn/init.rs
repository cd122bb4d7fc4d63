//! Seeded Keras-style initialisation: Glorot-uniform weights, biases and BN shifts at zero.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Re-initialises, in name order with one ChaCha8 stream seeded by `seed` (so the result depends
/// only on the seed and the names), every variable `pick(name, dims)` selects, with the values
/// `draw(dims, rng)` returns.
fn reinit(
    varmap: &VarMap,
    seed: u64,
    pick: impl Fn(&str, &[usize]) -> bool,
    mut draw: impl FnMut(&[usize], &mut ChaCha8Rng) -> Result<Vec<f32>>,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        if !pick(name, &dims) {
            continue;
        }
        let v = draw(&dims, &mut rng)?;
        let t = Tensor::from_vec(v, dims.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Re-initialises every `*.weight` of rank ≥ 2 in `varmap` with Glorot-uniform values drawn from
/// `seed` (in name order, so the result depends only on the seed). Convolution kernels
/// `[out, in, k]` use fan_in = in·k and fan_out = out·k, as Keras does.
pub fn glorot_init(varmap: &VarMap, seed: u64) -> Result<()> {
    reinit(
        varmap,
        seed,
        |name, dims| name.ends_with("weight") && dims.len() >= 2,
        |dims, rng| {
            let receptive: usize = dims[2..].iter().product();
            let fan_in = dims[1] * receptive;
            let fan_out = dims[0] * receptive;
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            let n: usize = dims.iter().product();
            Ok((0..n).map(|_| rng.random_range(-limit..limit)).collect())
        },
    )
}

/// Re-initialises every convolution kernel (`*.weight` of rank 4, `[out, in, kh, kw]`) in
/// `varmap` with He/Kaiming-normal values, fan-out mode for ReLU-family activations:
/// `N(0, 2 / (out·kh·kw))`, as USB/PyTorch initialise WideResNets
/// (`kaiming_normal_(mode="fan_out", nonlinearity="leaky_relu")` with slope 0 gives this gain).
/// Values are drawn from a ChaCha8 stream seeded with `seed`, variables in name order, so the
/// result depends only on the seed and the names. Other variables keep their values (batch-norm
/// γ = 1, β = 0; GCT α = 1, γ = β = 0).
pub fn kaiming_normal_init(varmap: &VarMap, seed: u64) -> Result<()> {
    reinit(
        varmap,
        seed,
        |name, dims| name.ends_with("weight") && dims.len() == 4,
        |dims, rng| {
            let fan_out = dims[0] * dims[2] * dims[3];
            let std = (2.0 / fan_out as f64).sqrt() as f32;
            let normal = rand_distr::Normal::new(0.0f32, std)
                .map_err(|e| candle_core::Error::Msg(format!("kaiming init: {e}")))?;
            let n: usize = dims.iter().product();
            Ok((0..n).map(|_| rng.sample(normal)).collect())
        },
    )
}
