//! A variational recurrent network (VRNN, Chung et al. 2015) over the time steps of a window:
//! the feature extractor of VRADA (Purushotham et al., ICLR 2017), as the CoDATS authors' code
//! builds it (100 hidden units, 100 latent dimensions; the features are the last step's latent
//! z, "VRADA uses z not h"). Per step t, with `x_t` the C channels and `h` the previous state:
//!
//! ```text
//! prior    p = relu(W_p h + b)          μ_p = W_pμ p + b       σ_p = softplus(W_pσ p + b)
//! input    φx = W_x x_t + b             (linear: sensor values are signed)
//! encoder  e = relu(W_e [φx, h] + b)    μ_q = W_qμ e + b       σ_q = softplus(W_qσ e + b)
//! latent   z = μ_q + σ_q ⊙ ε, ε ~ N(0, I) in training; z = μ_q in evaluation
//!          φz = relu(W_z z + b)
//! decoder  d = relu(W_d [φz, h] + b)    μ_x = W_xμ d + b       σ_x = softplus(W_xσ d + b)
//! state    h' = GRU([φx, φz], h)        (the GRU equations of [`super::gru`])
//! ```
//!
//! Hidden widths as the authors' cell: encoder and prior Z, decoder C. The authors' cell
//! recurs with an LSTM; this one with the GRU of R-DANN (one recurrent cell in the code base).
//!
//! Its loss ([`VrnnOutput::loss`]) is the negative ELBO averaged over steps and batch (the
//! authors' means over dimensions): per step, the KL divergence of the encoder's Gaussian from
//! the prior's, averaged over the Z latent dimensions, plus the Gaussian negative
//! log-likelihood of `x_t` under the decoder, ½((x − μ_x)²/σ_x² + log σ_x²), averaged over the
//! C channels (the constant ½ log 2π left out). Variances are floored at 1e-9 as theirs.

use candle_core::{Result, Tensor, D};
use candle_nn::{Init, Linear, Module, VarBuilder};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::nn::backbone::Mode;

/// Hidden units of the recurrent state.
pub const VRNN_HIDDEN: usize = 100;
/// Latent dimensions (the width of the features).
pub const VRNN_LATENT: usize = 100;
/// The floor of the standard deviations inside logarithms and divisions.
const EPS: f64 = 1e-9;

fn linear(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((c_out, c_in), "weight", Init::Const(0.0))?;
    let b = vb.get_with_hints(c_out, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

/// A dense layer with a mean and a standard-deviation output (softplus).
#[derive(Debug, Clone)]
struct Gaussian {
    hidden: Linear,
    mu: Linear,
    sigma: Linear,
}

impl Gaussian {
    fn new(c_in: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            hidden: linear(c_in, hidden, vb.pp("hidden"))?,
            mu: linear(hidden, out, vb.pp("mu"))?,
            sigma: linear(hidden, out, vb.pp("sigma"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.hidden.forward(x)?.relu()?;
        let sigma = softplus(&self.sigma.forward(&h)?)?;
        Ok((self.mu.forward(&h)?, sigma))
    }
}

/// softplus(v) = log(1 + e^v), computed as max(v, 0) + log(1 + e^−|v|) (no overflow).
pub fn softplus(v: &Tensor) -> Result<Tensor> {
    let pos = v.relu()?;
    let neg_abs = v.abs()?.neg()?;
    pos + (neg_abs.exp()? + 1.0)?.log()?
}

/// The VRNN. Parameter names: `prior.*`, `phi_x.*`, `encoder.*`, `phi_z.*`, `decoder.*`
/// (`hidden`, `mu`, `sigma` each), `rnn.ih.*`, `rnn.hh.*`.
#[derive(Debug, Clone)]
pub struct Vrnn {
    prior: Gaussian,
    phi_x: Linear,
    encoder: Gaussian,
    phi_z: Linear,
    decoder: Gaussian,
    ih: Linear,
    hh: Linear,
    hidden: usize,
    latent: usize,
}

/// What one pass gives: the features and the training loss's terms.
pub struct VrnnOutput {
    /// The last step's latent `[B, Z]`: the features.
    pub features: Tensor,
    /// Mean over steps and batch of the per-step KL term (averaged over Z).
    pub kl: Tensor,
    /// Mean over steps and batch of the per-step Gaussian NLL (averaged over C).
    pub nll: Tensor,
}

impl VrnnOutput {
    /// The negative ELBO, `kl + nll`.
    pub fn loss(&self) -> Result<Tensor> {
        &self.kl + &self.nll
    }
}

/// KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per element, averaged over the last axis: `[B]`.
pub fn gaussian_kl(mu_q: &Tensor, s_q: &Tensor, mu_p: &Tensor, s_p: &Tensor) -> Result<Tensor> {
    let sp = s_p.maximum(EPS)?;
    let sq = s_q.maximum(EPS)?;
    let t =
        ((sp.log()? - sq.log()?)? + ((sq.sqr()? + (mu_q - mu_p)?.sqr()?)? / (sp.sqr()? * 2.0)?)?)?;
    (t - 0.5)?.mean(D::Minus1)
}

/// ½((x − μ)²/σ² + log σ²) per element, averaged over the last axis: `[B]`.
pub fn gaussian_nll(x: &Tensor, mu: &Tensor, sigma: &Tensor) -> Result<Tensor> {
    let var = sigma.sqr()?.maximum(EPS)?;
    ((((x - mu)?.sqr()? / &var)? + var.log()?)? * 0.5)?.mean(D::Minus1)
}

impl Vrnn {
    /// Builds a VRNN over `channels` inputs with `hidden` state units and `latent` dimensions.
    pub fn new(channels: usize, hidden: usize, latent: usize, vb: VarBuilder) -> Result<Self> {
        let (c, h, z) = (channels, hidden, latent);
        Ok(Self {
            prior: Gaussian::new(h, z, z, vb.pp("prior"))?,
            phi_x: linear(c, c, vb.pp("phi_x"))?,
            encoder: Gaussian::new(c + h, z, z, vb.pp("encoder"))?,
            phi_z: linear(z, z, vb.pp("phi_z"))?,
            decoder: Gaussian::new(z + h, c, c, vb.pp("decoder"))?,
            ih: linear(c + z, 3 * h, vb.pp("rnn").pp("ih"))?,
            hh: linear(h, 3 * h, vb.pp("rnn").pp("hh"))?,
            hidden: h,
            latent: z,
        })
    }

    /// Width of the features (the latent dimensions).
    pub fn feature_dim(&self) -> usize {
        self.latent
    }

    /// One pass over windows `[B, C, T]`. In the training modes every step's ε is drawn from
    /// `rng` (B·Z standard normals per step, required); evaluation uses the encoder's means,
    /// draws nothing and is detached.
    pub fn forward(
        &self,
        x: &Tensor,
        mode: Mode,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<VrnnOutput> {
        let x = if mode == Mode::Eval {
            x.detach()
        } else {
            x.clone()
        };
        let (b, _c, t) = x.dims3()?;
        if t == 0 {
            candle_core::bail!("vrnn: a window of no time steps");
        }
        let sample = mode != Mode::Eval;
        if sample && rng.is_none() {
            candle_core::bail!("vrnn: a training pass needs the run's RNG for its latent draws");
        }
        let hd = self.hidden;
        let xt_all = x.transpose(1, 2)?.contiguous()?; // [B, T, C]
        let mut h = Tensor::zeros((b, hd), x.dtype(), x.device())?;
        let (mut kl, mut nll) = (Vec::with_capacity(t), Vec::with_capacity(t));
        let mut z = None;
        for step in 0..t {
            let xt = xt_all.narrow(1, step, 1)?.squeeze(1)?;
            let (mu_p, s_p) = self.prior.forward(&h)?;
            let phx = self.phi_x.forward(&xt)?;
            let (mu_q, s_q) = self.encoder.forward(&Tensor::cat(&[&phx, &h], 1)?)?;
            let zt = match rng.as_deref_mut().filter(|_| sample) {
                Some(rng) => {
                    let eps: Vec<f32> = (0..b * self.latent)
                        .map(|_| StandardNormal.sample(rng))
                        .collect();
                    let eps =
                        Tensor::from_vec(eps, (b, self.latent), x.device())?.to_dtype(x.dtype())?;
                    (&mu_q + (&s_q * eps)?)?
                }
                None => mu_q.clone(),
            };
            let phz = self.phi_z.forward(&zt)?.relu()?;
            let (mu_x, s_x) = self.decoder.forward(&Tensor::cat(&[&phz, &h], 1)?)?;
            kl.push(gaussian_kl(&mu_q, &s_q, &mu_p, &s_p)?);
            nll.push(gaussian_nll(&xt, &mu_x, &s_x)?);
            h = self.gru_step(&Tensor::cat(&[&phx, &phz], 1)?, &h)?;
            z = Some(zt);
        }
        let mean = |v: Vec<Tensor>| -> Result<Tensor> { Tensor::stack(&v, 0)?.mean_all() };
        Ok(VrnnOutput {
            features: z.expect("at least one step"),
            kl: mean(kl)?,
            nll: mean(nll)?,
        })
    }

    fn gru_step(&self, input: &Tensor, h: &Tensor) -> Result<Tensor> {
        let hd = self.hidden;
        let gi = self.ih.forward(input)?;
        let gh = self.hh.forward(h)?;
        let rz = candle_nn::ops::sigmoid(
            &(gi.narrow(D::Minus1, 0, 2 * hd)? + gh.narrow(D::Minus1, 0, 2 * hd)?)?,
        )?;
        let r = rz.narrow(D::Minus1, 0, hd)?;
        let zg = rz.narrow(D::Minus1, hd, hd)?;
        let n = (gi.narrow(D::Minus1, 2 * hd, hd)? + (r * gh.narrow(D::Minus1, 2 * hd, hd)?)?)?
            .tanh()?;
        &n + (zg * (h - &n)?)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use rand::SeedableRng;

    fn t(v: &[f64], n: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (1, n), &Device::Cpu).unwrap()
    }

    fn scalar(x: &Tensor) -> f64 {
        x.flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]
    }

    #[test]
    fn kl_and_nll_match_hand_computation() {
        // KL(N(1, 0.5²) ‖ N(0, 2²)) = log(2/0.5) + (0.25 + 1)/(2·4) − ½ = 1.0425944 and
        // KL(N(0, 1) ‖ N(0, 1)) = 0: the mean over the two dimensions is 0.5212722.
        let kl = gaussian_kl(
            &t(&[1.0, 0.0], 2),
            &t(&[0.5, 1.0], 2),
            &t(&[0.0, 0.0], 2),
            &t(&[2.0, 1.0], 2),
        )
        .unwrap();
        let want = ((4f64).ln() + 1.25 / 8.0 - 0.5) / 2.0;
        assert!((scalar(&kl) - want).abs() < 1e-12, "{}", scalar(&kl));
        assert!((want - 0.521_272_2).abs() < 1e-7);
        // NLL of x = 3 under N(1, 2²): ½(4/4 + log 4) = 1.1931472; of 0 under N(0, 1): 0.
        let nll = gaussian_nll(&t(&[3.0, 0.0], 2), &t(&[1.0, 0.0], 2), &t(&[2.0, 1.0], 2)).unwrap();
        let want = 0.5 * (1.0 + (4f64).ln()) / 2.0;
        assert!((scalar(&nll) - want).abs() < 1e-12, "{}", scalar(&nll));
        // softplus: log(1 + e^v), stable for large |v|.
        let sp = softplus(&t(&[0.0, 50.0], 2))
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        assert!((sp[0][0] - 2f64.ln()).abs() < 1e-12 && (sp[0][1] - 50.0).abs() < 1e-12);
    }

    fn vrnn() -> (VarMap, Vrnn) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let net = Vrnn::new(2, 4, 3, vb).unwrap();
        crate::nn::glorot_init(&vm, 7).unwrap();
        (vm, net)
    }

    #[test]
    fn evaluation_is_the_encoders_mean_and_training_draws_b_times_z_per_step() {
        let (_vm, net) = vrnn();
        let x = Tensor::randn(0f64, 1., (3, 2, 5), &Device::Cpu).unwrap();
        let a = net.forward(&x, Mode::Eval, None).unwrap();
        assert_eq!(a.features.dims(), &[3, 3]);
        let b = net.forward(&x, Mode::Eval, None).unwrap();
        assert_eq!(
            a.features.to_vec2::<f64>().unwrap(),
            b.features.to_vec2::<f64>().unwrap()
        );
        assert!(scalar(&a.loss().unwrap()).is_finite());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let tr = net.forward(&x, Mode::Train, Some(&mut rng)).unwrap();
        let mut expected = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..5 * 3 * 3 {
            let _: f32 = StandardNormal.sample(&mut expected);
        }
        assert_eq!(rng, expected);
        assert_ne!(
            tr.features.to_vec2::<f64>().unwrap(),
            a.features.to_vec2::<f64>().unwrap()
        );
        assert!(net.forward(&x, Mode::Train, None).is_err());
    }

    #[test]
    fn the_elbo_and_features_have_finite_difference_gradients() {
        let (_vm, net) = vrnn();
        let x = Tensor::randn(0f64, 1., (2, 2, 4), &Device::Cpu).unwrap();
        // Training mode with a fixed draw: the same seed every call, so f is a function of x.
        let w = Tensor::new(&[[0.4f64, -0.9, 1.3]], &Device::Cpu).unwrap();
        let f = |x: &Tensor| -> Result<Tensor> {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let o = net.forward(x, Mode::Train, Some(&mut rng))?;
            o.loss()? + o.features.broadcast_mul(&w)?.sum_all()?
        };
        let e = crate::losses::gradcheck::max_error(f, &x, 1e-6).unwrap();
        assert!(e < 1e-6, "{e}");
    }
}
