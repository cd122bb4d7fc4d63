//! AdvSKM (Liu & Xue, "Adversarial Spectral Kernel Matching for Unsupervised Time Series
//! Domain Adaptation", IJCAI 2021), as AdaTime implements it: a spectral kernel mapping network
//! φ embeds the features, and the MMD between the embedded source and target features is
//! maximised by φ and minimised by the feature extractor, next to source cross-entropy.
//!
//! φ has two branches whose outputs are concatenated (AdaTime's `AdvSKM_Disc`): each is
//! linear → linear → batch norm → activation → linear → linear → batch norm → activation, the
//! first with a cosine activation (random-Fourier-feature-like spectral features, widths
//! `cos_hidden`, `cos_hidden / 2`), the second with ReLU (`relu_hidden`, `relu_hidden / 2`).
//! The batch norms use the batch's own statistics (φ is never evaluated, so it keeps no running
//! ones), PyTorch's ε 1e-5, and φ embeds the source and target rows in separate calls, as
//! AdaTime does, so each domain is normalised by its own statistics. AdaTime's linear layers
//! have biases, but a bias in front of a batch norm is cancelled by its mean subtraction: the
//! linears here have none (same function, no parameter without a gradient).
//!
//! AdaTime alternates two updates per batch: φ on −MMD(φ(f_s), φ(f_t)) with the features
//! detached, then the network on `src_cls_loss_wt` · CE + `domain_loss_wt` · MMD through φ.
//! Here one backward pass does both, with the same gradients: the loss is
//!
//! CE + `mmd_weight` · MMD(φ̄(f_s), φ̄(f_t)) − MMD(φ(sg f_s), φ(sg f_t)),
//!
//! where φ̄ is φ with its parameters detached and sg stops the gradient, so φ ascends the MMD
//! and the network descends it (the one difference: AdaTime's network update sees φ after its
//! own step of that batch, here φ before it). The MMD is [`super::mmd::mmd`], the multi-kernel
//! Gaussian MMD with the median-heuristic bandwidth (AdaTime's `MMD_loss` takes the mean
//! distance instead; the bandwidth multiples 2^k, k = −2..2, are the same).
//!
//! Defaults: AdaTime's UCI HAR weight relative to its task weight (1.3388 / 2.4685) and its
//! UCI HAR widths (`DSKN_disc_hid` 128, `disc_hid_dim` 64).

use super::Joint;
use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, StepContext, StepOutput,
    Task,
};
use crate::nn::CodatsModel;

/// AdvSKM's registry entry.
pub const ADVSKM: MethodInfo = MethodInfo {
    name: "advskm",
    aliases: &[],
    label: "AdvSKM",
    help: "AdvSKM: a spectral kernel network maximises, the features minimise, the MMD between embedded source and target features",
    color: (160, 82, 45),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[
        Param {
            name: "mmd_weight",
            default: 1.338_788_378_230_754 / 2.468_525_942_065_072,
            min: 0.0,
            max: 1e6,
            help: "weight of the adversarial MMD in the network's loss (AdaTime HAR: 1.34 against a task weight of 2.47)",
        },
        Param {
            name: "cos_hidden",
            default: 128.0,
            min: 2.0,
            max: 4096.0,
            help: "width of the cosine branch of the kernel network, an even integer (AdaTime HAR: 128)",
        },
        Param {
            name: "relu_hidden",
            default: 64.0,
            min: 2.0,
            max: 4096.0,
            help: "width of the ReLU branch of the kernel network, an even integer (AdaTime HAR: 64)",
        },
    ],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(AdvSkm::new(kind, setup, vb)?))
}

/// PyTorch's batch-norm ε.
const BN_EPS: f64 = 1e-5;

/// The activation of a branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// cos(x): the spectral branch.
    Cos,
    /// max(x, 0).
    Relu,
}

/// One branch of φ: `[lin, lin, bn, act]` twice. Weights `[out, in]`, batch-norm (γ, β).
#[derive(Debug, Clone)]
pub struct Branch {
    linears: [Tensor; 4],
    norms: [(Tensor, Tensor); 2],
    act: Activation,
}

impl Branch {
    /// The branch `input → hidden → hidden/2` under `vb` (`fc1`..`fc4`, `bn1`, `bn2`).
    pub fn new(input: usize, hidden: usize, act: Activation, vb: VarBuilder) -> Result<Self> {
        let half = hidden / 2;
        let dims = [
            (hidden, input),
            (hidden, hidden),
            (half, hidden),
            (half, half),
        ];
        let mut linears = Vec::with_capacity(4);
        for (i, d) in dims.iter().enumerate() {
            linears.push(vb.get_with_hints(
                *d,
                &format!("fc{}.weight", i + 1),
                Init::Const(0.0),
            )?);
        }
        let mut norms = Vec::with_capacity(2);
        for (i, w) in [hidden, half].iter().enumerate() {
            let vb = vb.pp(format!("bn{}", i + 1));
            norms.push((
                vb.get_with_hints(*w, "gamma", Init::Const(1.0))?,
                vb.get_with_hints(*w, "beta", Init::Const(0.0))?,
            ));
        }
        let linears: [Tensor; 4] = linears.try_into().expect("four linears");
        let norms: [(Tensor, Tensor); 2] = norms.try_into().expect("two norms");
        Ok(Self {
            linears,
            norms,
            act,
        })
    }

    /// A branch over given parameters (tests).
    pub fn from_params(
        linears: [Tensor; 4],
        norms: [(Tensor, Tensor); 2],
        act: Activation,
    ) -> Self {
        Self {
            linears,
            norms,
            act,
        }
    }

    /// The branch on rows `x` `[n, in]`; `frozen` detaches its parameters (φ̄).
    pub fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let p = |t: &Tensor| if frozen { t.detach() } else { t.clone() };
        let mut h = x.clone();
        for half in 0..2 {
            for w in &self.linears[2 * half..2 * half + 2] {
                h = h.matmul(&p(w).t()?)?;
            }
            let (g, b) = &self.norms[half];
            h = batch_norm(&h, &p(g), &p(b))?;
            h = match self.act {
                Activation::Cos => h.cos()?,
                Activation::Relu => h.relu()?,
            };
        }
        Ok(h)
    }
}

/// Batch norm of rows `x` `[n, d]` with the batch's statistics (biased variance, ε 1e-5).
fn batch_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    let var = centred.sqr()?.mean_keepdim(0)?;
    centred
        .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
        .broadcast_mul(&gamma.unsqueeze(0)?)?
        .broadcast_add(&beta.unsqueeze(0)?)
}

/// The spectral kernel mapping network φ: the cosine and ReLU branches, concatenated.
#[derive(Debug, Clone)]
pub struct KernelNet {
    branches: [Branch; 2],
}

impl KernelNet {
    /// φ over given branches (tests).
    pub fn from_branches(cos: Branch, relu: Branch) -> Self {
        Self {
            branches: [cos, relu],
        }
    }

    /// Embeds rows `x` `[n, in]` → `[n, cos_hidden/2 + relu_hidden/2]`.
    pub fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let a = self.branches[0].forward(x, frozen)?;
        let b = self.branches[1].forward(x, frozen)?;
        Tensor::cat(&[&a, &b], 1)
    }
}

/// AdvSKM's two terms on source features `[n_s, F]` and target features `[n_t, F]`:
/// (MMD(φ̄(f_s), φ̄(f_t)), the network's term, gradient to the features only;
/// −MMD(φ(sg f_s), φ(sg f_t)), φ's term, gradient to φ only). Each domain is embedded alone.
pub fn advskm_terms(net: &KernelNet, fs: &Tensor, ft: &Tensor) -> Result<(Tensor, Tensor)> {
    advskm_terms_with(net, fs, ft, &super::mmd::mmd)
}

/// [`advskm_terms`] with the distance `mmd` between embeddings (the finite-difference checks
/// fix its bandwidth: the median heuristic's is a constant to autograd).
pub fn advskm_terms_with(
    net: &KernelNet,
    fs: &Tensor,
    ft: &Tensor,
    mmd: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let network = mmd(&net.forward(fs, true)?, &net.forward(ft, true)?)?;
    let kernel = mmd(
        &net.forward(&fs.detach(), false)?,
        &net.forward(&ft.detach(), false)?,
    )?
    .affine(-1.0, 0.0)?;
    Ok((network, kernel))
}

/// A width parameter: an even integer.
fn even_width(setup: &MethodSetup, name: &str) -> Result<usize> {
    let v = setup.param(name)?;
    if v.fract() != 0.0 || (v as usize) % 2 != 0 {
        candle_core::bail!("--param {name}={v}: must be an even integer");
    }
    Ok(v as usize)
}

/// AdvSKM with the CoDATS network; φ's variables are `advskm.cos.*` and `advskm.relu.*`.
pub struct AdvSkm {
    kind: MethodKind,
    model: CodatsModel,
    net: KernelNet,
    mmd_weight: f64,
}

impl AdvSkm {
    /// Builds the network and φ.
    pub fn new(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Self> {
        let cos = even_width(setup, "cos_hidden")?;
        let relu = even_width(setup, "relu_hidden")?;
        let model = CodatsModel::new(setup.model_config(None), vb.clone())?;
        let vb = vb.pp("advskm");
        let net = KernelNet::from_branches(
            Branch::new(model.feature_dim(), cos, Activation::Cos, vb.pp("cos"))?,
            Branch::new(model.feature_dim(), relu, Activation::Relu, vb.pp("relu"))?,
        );
        Ok(Self {
            kind,
            model,
            net,
            mmd_weight: setup.param("mmd_weight")?,
        })
    }
}

impl Method for AdvSkm {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss", "mmd_loss"]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        // One forward pass over [sources, target], as CoDATS does (shared batch statistics).
        let Joint {
            features,
            ys,
            n_src,
            n_tgt,
            ..
        } = Joint::forward(&self.model, batch, self.kind, &mut *ctx.rng)?;
        let f_src = features.narrow(0, 0, n_src)?;
        let f_tgt = features.narrow(0, n_src, n_tgt)?;
        let task_loss = cross_entropy(&self.model.task_logits(&f_src)?, &ys)?;
        let (mmd, kernel_term) = advskm_terms(&self.net, &f_src, &f_tgt)?;
        let loss = ((&task_loss + mmd.affine(self.mmd_weight, 0.0)?)? + kernel_term)?;
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", task_loss.to_scalar::<f32>()?),
                ("mmd_loss", mmd.to_scalar::<f32>()?),
            ],
            loss,
            target_logits: Some(self.model.task_logits(&f_tgt)?),
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.model.features(x, false, None).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::{Device, Var};

    fn t(v: &[f64], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn v(x: &[f64]) -> Tensor {
        Tensor::from_vec(x.to_vec(), x.len(), &Device::Cpu).unwrap()
    }

    /// A branch 2 → 2 → 1 with fixed weights.
    fn branch(act: Activation, s: f64) -> Branch {
        Branch::from_params(
            [
                t(&[1.0 * s, 0.5, -0.5, 1.0], (2, 2)),
                t(&[1.0, 0.0, 0.3, 1.0], (2, 2)),
                t(&[0.7, -0.4], (1, 2)),
                t(&[1.5], (1, 1)),
            ],
            [(v(&[1.0, 2.0]), v(&[0.0, 0.1])), (v(&[0.8]), v(&[0.2]))],
            act,
        )
    }

    #[test]
    fn the_kernel_network_matches_a_hand_computation() -> Result<()> {
        // Three rows (1, 0), (0, 1), (1, 1) through the cosine branch, computed with Python's
        // math module: lin·lin, batch norm (biased variance, ε 1e-5), cos, twice.
        let x = t(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], (3, 2));
        let net =
            KernelNet::from_branches(branch(Activation::Cos, 1.0), branch(Activation::Relu, 2.0));
        let y = net.forward(&x, false)?.to_vec2::<f64>()?;
        let want = [
            [0.274_427_583_421_516_13, 1.057_060_088_167_964_2],
            [0.995_697_120_733_514_7, 0.0],
            [0.825_334_812_234_651_2, 0.411_038_209_076_223_1],
        ];
        for (row, w) in y.iter().zip(want) {
            for (a, b) in row.iter().zip(w) {
                assert!((a - b).abs() < 1e-12, "{y:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn the_kernel_ascends_and_the_features_descend_the_same_mmd() -> Result<()> {
        let fs = Var::from_tensor(&t(&[1.0, 0.0, 0.2, 1.0, 1.0, 1.0], (3, 2)))?;
        let ft = t(&[0.0, 0.5, 2.0, -1.0], (2, 2));
        let w1 = Var::from_tensor(&t(&[1.0, 0.5, -0.5, 1.0], (2, 2)))?;
        let b = branch(Activation::Cos, 1.0);
        let mut linears = b.linears.clone();
        linears[0] = w1.as_tensor().clone();
        let net = KernelNet::from_branches(
            Branch::from_params(linears, b.norms.clone(), Activation::Cos),
            branch(Activation::Relu, 2.0),
        );
        let (network, kernel) = advskm_terms(&net, fs.as_tensor(), &ft)?;
        // Both terms are the same MMD, once negated.
        let m = network.to_scalar::<f64>()?;
        assert!(m > 0.0);
        assert!((kernel.to_scalar::<f64>()? + m).abs() < 1e-12);
        let direct = super::super::mmd::mmd(
            &net.forward(fs.as_tensor(), false)?,
            &net.forward(&ft, false)?,
        )?;
        let gd = direct.backward()?;
        // The network's term: the MMD's feature gradient, no kernel gradient.
        let g = network.backward()?;
        assert!(g.get(w1.as_tensor()).is_none());
        let diff = (g.get(fs.as_tensor()).unwrap() - gd.get(fs.as_tensor()).unwrap())?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{diff}");
        // The kernel's term: minus the MMD's kernel gradient, no feature gradient.
        let g = kernel.backward()?;
        assert!(g.get(fs.as_tensor()).is_none());
        let sum = (g.get(w1.as_tensor()).unwrap() + gd.get(w1.as_tensor()).unwrap())?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        let size = gd
            .get(w1.as_tensor())
            .unwrap()
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(sum < 1e-12 && size > 1e-6, "{sum} {size}");
        Ok(())
    }

    #[test]
    fn both_terms_match_finite_differences() -> Result<()> {
        // With a fixed bandwidth the MMD is smooth: the network's term in the source and the
        // target features, and the kernel's term in a first-layer weight of each branch.
        let fs = t(&[1.0, 0.0, 0.2, 1.0, 1.0, 1.0], (3, 2));
        let ft = t(&[0.0, 0.5, 2.0, -1.0, 0.3, 0.3], (3, 2));
        let dist = |a: &Tensor, b: &Tensor| super::super::mmd::mmd_with_bandwidth(a, b, 0.7);
        let net =
            KernelNet::from_branches(branch(Activation::Cos, 1.0), branch(Activation::Relu, 2.0));
        let e = max_error(|x| Ok(advskm_terms_with(&net, x, &ft, &dist)?.0), &fs, 1e-6)?;
        assert!(e < 1e-7, "source features: {e}");
        let e = max_error(|x| Ok(advskm_terms_with(&net, &fs, x, &dist)?.0), &ft, 1e-6)?;
        assert!(e < 1e-7, "target features: {e}");
        for which in 0..2 {
            let b = [branch(Activation::Cos, 1.0), branch(Activation::Relu, 2.0)];
            let w0 = b[which].linears[0].clone();
            let kernel = |w: &Tensor| {
                let mut b = b.clone();
                b[which].linears[0] = w.clone();
                let [cos, relu] = b;
                Ok(advskm_terms_with(&KernelNet::from_branches(cos, relu), &fs, &ft, &dist)?.1)
            };
            let e = max_error(kernel, &w0, 1e-6)?;
            assert!(e < 1e-7, "branch {which} weight: {e}");
        }
        Ok(())
    }

    #[test]
    fn widths_must_be_even_integers() {
        let kind = MethodKind::parse("advskm").expect("registered");
        for (name, bad) in [("cos_hidden", 7.0), ("relu_hidden", 6.5)] {
            let given = [(name.to_string(), bad)].into();
            let setup = MethodSetup {
                channels: 3,
                classes: 4,
                n_sources: 1,
                given_proportions: None,
                target_train_proportions: None,
                ws_noise: None,
                ws: false,
                seed: 0,
                kernels: crate::nn::Kernels::Fast,
                gct: false,
                backbone: Default::default(),
                params: kind.resolve_params(&given).unwrap(),
                image: None,
            };
            let err = crate::methods::build(kind, &setup, &candle_nn::VarMap::new())
                .err()
                .expect("refused")
                .to_string();
            assert!(
                err.contains(&format!("--param {name}={bad}: must be an even integer")),
                "{err}"
            );
        }
    }
}
