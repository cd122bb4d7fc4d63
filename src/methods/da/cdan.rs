//! CDAN (Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018): the CoDATS
//! FCN and task head, and a gradient-reversed source-vs-target domain head (the CoDATS domain
//! head, 2 outputs, all sources pooled as "source") on the multilinear map f ⊗ p of the features
//! f `[F]` and the class probabilities p `[K]`, flattened to K·F inputs (768 for F = 128, K = 6;
//! small enough without CDAN's randomised map). p is detached, as in the authors' code, so the
//! conditioning passes no adversarial gradient to the task head. CDAN+E
//! (`entropy_weighting=1`) weighs each row's domain loss by 1 + exp(−H(p)), normalised over
//! each side (source rows, target rows) as the authors' code does.
//!
//! The loss is source cross-entropy + `domain_weight` × domain loss + `cond_ent_weight` × the
//! mean entropy of the target predictions. The defaults are the paper's objective (weight 1, no
//! entropy term); AdaTime's UCI HAR weights relative to its task weight are
//! `domain_weight=0.56 cond_ent_weight=0.33` (5.19 : 2.91 : 1.73). On UCI HAR 2 → 11 (500 steps,
//! lr 1e-3, seed 0) the entropy term made the target collapse early (46.9 % against 82.8 %).

use super::Joint;
use crate::methods::Task;
use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use super::codats::grouped_domain_labels;
use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, ParamGroup, StepContext,
    StepOutput,
};
use crate::nn::model::DomainHead;
use crate::nn::{grl_lambda, CodatsModel, GradReverse};

/// CDAN's registry entry.
pub const CDAN: MethodInfo = MethodInfo {
    name: "cdan",
    aliases: &[],
    label: "CDAN",
    help: "CDAN: a gradient-reversed domain head on features ⊗ class probabilities (CDAN+E with entropy_weighting=1)",
    color: (0, 158, 115),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[
        Param {
            name: "domain_weight",
            default: 1.0,
            min: 0.0,
            max: 1e6,
            help: "weight of the conditional domain loss (CDAN: 1; AdaTime HAR: 2.91 / 5.19)",
        },
        Param {
            name: "cond_ent_weight",
            default: 0.0,
            min: 0.0,
            max: 1e6,
            help: "weight of the target prediction entropy (CDAN: 0; AdaTime HAR: 1.73 / 5.19)",
        },
        Param {
            name: "entropy_weighting",
            default: 0.0,
            min: 0.0,
            max: 1.0,
            help: "1: CDAN+E, rows weighted by 1 + exp(-entropy); 0: plain CDAN",
        },
    ],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Cdan::new(kind, setup, vb)?))
}

/// The flattened multilinear map `[B, K·F]` of features `[B, F]` and probabilities `[B, K]`:
/// row b is (p_b1 f_b, p_b2 f_b, …, p_bK f_b), the authors' `bmm(p.unsqueeze(2), f.unsqueeze(1))`.
pub fn multilinear_map(features: &Tensor, probs: &Tensor) -> Result<Tensor> {
    let (b, f) = features.dims2()?;
    let k = probs.dim(1)?;
    probs
        .unsqueeze(2)?
        .broadcast_mul(&features.unsqueeze(1)?)?
        .reshape((b, k * f))
}

/// Log-softmax over the last axis, differentiable (the detached maximum only shifts it).
fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let shifted = logits.broadcast_sub(&logits.max_keepdim(D::Minus1)?.detach())?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// Mean entropy −Σ_k p_k log p_k of softmax(`logits`) over the rows (AdaTime's conditional
/// entropy loss), differentiable.
pub fn mean_entropy(logits: &Tensor) -> Result<Tensor> {
    let logp = log_softmax(logits)?;
    (logp.exp()? * &logp)?
        .sum(D::Minus1)?
        .mean_all()?
        .affine(-1.0, 0.0)
}

/// CDAN+E's row weights `[B]` (detached) for probabilities `probs` `[B, K]` whose first
/// `n_source` rows are source rows: w = 1 + exp(−H(p)) with H(p) = −Σ p log(p + 1e-5) (the
/// authors' ε), divided by the sum of w over the row's own side.
pub fn entropy_weights(probs: &Tensor, n_source: usize) -> Result<Tensor> {
    let p = probs.detach();
    let b = p.dim(0)?;
    let h = (&p * (&p + 1e-5)?.log()?)?
        .sum(D::Minus1)?
        .affine(-1.0, 0.0)?;
    let w = (h.affine(-1.0, 0.0)?.exp()? + 1.0)?;
    let mut parts = Vec::new();
    for (start, n) in [(0, n_source), (n_source, b - n_source)] {
        if n > 0 {
            let side = w.narrow(0, start, n)?;
            parts.push(side.broadcast_div(&side.sum_all()?)?);
        }
    }
    Tensor::cat(&parts, 0)
}

/// The domain loss: cross-entropy of `logits` `[B, 2]` against `labels` `[B]` (u32), the mean
/// over rows, or with `weights` `[B]` the weighted mean Σ w_i ce_i / Σ w_i (CDAN+E).
pub fn cdan_domain_loss(
    logits: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let Some(w) = weights else {
        return cross_entropy(logits, labels);
    };
    let (b, k) = logits.dims2()?;
    let ids = labels.to_vec1::<u32>()?;
    let mut onehot = vec![0f64; b * k];
    for (i, &c) in ids.iter().enumerate() {
        onehot[i * k + c as usize] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (b, k), logits.device())?.to_dtype(logits.dtype())?;
    let ce = (log_softmax(logits)? * onehot)?
        .sum(D::Minus1)?
        .affine(-1.0, 0.0)?;
    let w = w.to_dtype(logits.dtype())?.detach();
    (&w * ce)?.sum_all()?.broadcast_div(&w.sum_all()?)
}

/// CDAN / CDAN+E with the CoDATS network.
pub struct Cdan {
    kind: MethodKind,
    model: CodatsModel,
    head: DomainHead,
    domain_weight: f64,
    cond_ent_weight: f64,
    entropy_weighting: bool,
}

impl Cdan {
    /// Builds the network and the domain head on K·F inputs (`domain.*`).
    pub fn new(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Self> {
        let ew = setup.param("entropy_weighting")?;
        if ew != 0.0 && ew != 1.0 {
            candle_core::bail!("--param entropy_weighting={ew}: must be 0 (CDAN) or 1 (CDAN+E)");
        }
        let model = CodatsModel::new(setup.model_config(None), vb.clone())?;
        let head = DomainHead::with_input(
            setup.classes * model.feature_dim(),
            2,
            setup.kernels,
            vb.pp("domain"),
        )?;
        Ok(Self {
            kind,
            model,
            head,
            domain_weight: setup.param("domain_weight")?,
            cond_ent_weight: setup.param("cond_ent_weight")?,
            entropy_weighting: ew == 1.0,
        })
    }
}

impl Method for Cdan {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss", "domain_loss", "entropy_loss", "lambda"]
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
        let logits = self.model.task_logits(&features)?;
        let task_loss = cross_entropy(&logits.narrow(0, 0, n_src)?, &ys)?;
        let probs = crate::losses::softmax(&logits)?.detach();
        let lambda = grl_lambda(ctx.step, ctx.total_steps);
        let map = GradReverse::apply(&multilinear_map(&features, &probs)?, lambda)?;
        let domain_logits = self.head.forward(&map, Some(ctx.rng))?;
        let sizes = [n_src];
        let labels = Tensor::from_vec(
            grouped_domain_labels(&sizes, n_tgt),
            n_src + n_tgt,
            features.device(),
        )?;
        let weights = match self.entropy_weighting {
            true => Some(entropy_weights(&probs, n_src)?),
            false => None,
        };
        let domain_loss = cdan_domain_loss(&domain_logits, &labels, weights.as_ref())?;
        let target_logits = logits.narrow(0, n_src, n_tgt)?;
        let entropy_loss = mean_entropy(&target_logits)?;
        let loss = ((&task_loss + domain_loss.affine(self.domain_weight, 0.0)?)?
            + entropy_loss.affine(self.cond_ent_weight, 0.0)?)?;
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", task_loss.to_scalar::<f32>()?),
                ("domain_loss", domain_loss.to_scalar::<f32>()?),
                ("entropy_loss", entropy_loss.to_scalar::<f32>()?),
                ("lambda", lambda as f32),
            ],
            loss,
            target_logits: Some(target_logits),
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.model.features(x, false, None).map(Some)
    }

    /// As CoDATS: Adam on everything, and a second Adam (own state) on the domain head.
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![
            ParamGroup::new("model", ""),
            ParamGroup::new("domain_head", "domain."),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;

    fn t(v: &[f64], rows: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (rows, v.len() / rows), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_multilinear_map_is_the_flattened_outer_product() -> Result<()> {
        // f = (1, 2), p = (0.25, 0.75) → (0.25, 0.5, 0.75, 1.5); second row f = (−1, 3), p = (1, 0).
        let f = t(&[1.0, 2.0, -1.0, 3.0], 2);
        let p = t(&[0.25, 0.75, 1.0, 0.0], 2);
        let m = multilinear_map(&f, &p)?.to_vec2::<f64>()?;
        assert_eq!(
            m,
            vec![vec![0.25, 0.5, 0.75, 1.5], vec![-1.0, 3.0, 0.0, 0.0]]
        );
        Ok(())
    }

    #[test]
    fn entropy_weights_and_the_weighted_loss_match_a_hand_computation() -> Result<()> {
        // Two source rows, one target row, K = 2.
        // H(1, 0) = −ln(1 + 1e-5) ≈ −1e-5 → w = 1 + e^{1e-5}; H(½, ½) = −ln(½ + 1e-5) → w = 1 + (½ + 1e-5)
        // (exactly, since exp(−H) = exp(Σ p ln(p + ε)) = ½ + 1e-5 when both p are ½).
        let p = t(&[1.0, 0.0, 0.5, 0.5, 0.5, 0.5], 3);
        let w = entropy_weights(&p, 2)?.to_vec1::<f64>()?;
        let (wa, wb) = (1.0 + (1.0f64 + 1e-5).ln().exp(), 1.5 + 1e-5);
        assert!((w[0] - wa / (wa + wb)).abs() < 1e-12, "{w:?}");
        assert!((w[1] - wb / (wa + wb)).abs() < 1e-12, "{w:?}");
        assert!(
            (w[2] - 1.0).abs() < 1e-12,
            "the target side alone sums to 1: {w:?}"
        );
        // Weighted domain loss with domain logits whose CEs are ln 2 (row 0: (0, 0)),
        // ln(4/3) (row 1: (0, ln 3) → p(1) = 3/4) and ln 4 (row 2, target, p(0) = 1/4).
        let ln3 = 3f64.ln();
        let logits = t(&[0.0, 0.0, 0.0, ln3, 0.0, ln3], 3);
        let labels = Tensor::new(&[1u32, 1, 0], &Device::Cpu)?;
        let wt = Tensor::new(&[0.25f64, 0.75, 1.0], &Device::Cpu)?;
        let want = (0.25 * 2f64.ln() + 0.75 * (4.0f64 / 3.0).ln() + 4f64.ln()) / 2.0;
        let got = cdan_domain_loss(&logits, &labels, Some(&wt))?.to_scalar::<f64>()?;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Without weights it is the plain mean cross-entropy.
        let plain = cdan_domain_loss(&logits, &labels, None)?.to_scalar::<f64>()?;
        let mean = (2f64.ln() + (4.0f64 / 3.0).ln() + 4f64.ln()) / 3.0;
        assert!((plain - mean).abs() < 1e-12, "{plain} vs {mean}");
        // Mean entropy: rows (0, 0) → ln 2 and (0, ln 3) → −(¼ ln ¼ + ¾ ln ¾).
        let ent = mean_entropy(&t(&[0.0, 0.0, 0.0, ln3], 2))?.to_scalar::<f64>()?;
        let h2 = -(0.25 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        assert!((ent - (2f64.ln() + h2) / 2.0).abs() < 1e-12, "{ent}");
        Ok(())
    }

    #[test]
    fn the_conditional_domain_loss_gradient_matches_finite_differences() -> Result<()> {
        // Domain loss of a linear head on the map, w.r.t. the features (p fixed, as in training).
        let f = t(&[0.3, -1.2, 2.0, 0.5, 1.1, 0.0, -0.7, 0.9, -2.0], 3);
        let p = t(&[0.2, 0.8, 0.6, 0.4, 0.5, 0.5], 3);
        let head = t(
            &[
                0.2, -0.5, 1.0, 0.3, -0.1, 0.8, 0.4, 0.1, -0.6, 0.9, 0.7, -0.3,
            ],
            6,
        );
        let labels = Tensor::new(&[1u32, 1, 0], &Device::Cpu)?;
        let w = entropy_weights(&p, 2)?;
        for weights in [None, Some(&w)] {
            let loss = |x: &Tensor| {
                cdan_domain_loss(&multilinear_map(x, &p)?.matmul(&head)?, &labels, weights)
            };
            let e = max_error(loss, &f, 1e-6)?;
            assert!(e < 1e-8, "weighted: {}: {e}", weights.is_some());
        }
        let logits = t(&[0.3, -1.2, 2.0, 0.5, 1.1, 0.0], 3);
        assert!(max_error(mean_entropy, &logits, 1e-6)? < 1e-8);
        Ok(())
    }

    #[test]
    fn entropy_weighting_is_zero_or_one() {
        let kind = MethodKind::parse("cdan").expect("registered");
        let given = [("entropy_weighting".to_string(), 0.5)].into();
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
            params: kind.resolve_params(&given).expect("in range"),
            image: None,
        };
        let varmap = candle_nn::VarMap::new();
        let err = crate::methods::build(kind, &setup, &varmap)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("entropy_weighting=0.5: must be 0 (CDAN) or 1 (CDAN+E)"),
            "{err}"
        );
        // The head reads K·F = 4 · 128 inputs.
        let setup = MethodSetup {
            params: kind.resolve_params(&Default::default()).unwrap(),
            ..setup
        };
        let varmap = candle_nn::VarMap::new();
        crate::methods::build(kind, &setup, &varmap).expect("builds");
        let fc1: Vec<Vec<usize>> = crate::methods::trainable_vars(&varmap, "domain.fc1.weight")
            .into_iter()
            .map(|(_, v)| v.as_tensor().dims().to_vec())
            .collect();
        assert_eq!(fc1, vec![vec![500, 4 * crate::nn::model::FEATURES]]);
    }
}
