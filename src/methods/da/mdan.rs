//! MDAN-smooth (Zhao et al., "Adversarial Multiple Source Domain Adaptation", NeurIPS 2018):
//! the CoDATS FCN and task head, one gradient-reversed source-vs-target domain head per source
//! (the CoDATS domain head with 2 outputs), and the smoothed maximum of the per-source losses,
//! (1/γ) log Σ_i exp(γ (t_i + μ d_i)), where t_i is source i's cross-entropy and d_i its domain
//! loss (source i's rows are domain 1, the target's domain 0). With one source the smoothed
//! maximum is t_1 + μ d_1: DANN.

use crate::methods::Task;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, ParamGroup, StepContext,
    StepOutput,
};
use crate::nn::model::DomainHead;
use crate::nn::{grl_lambda, CodatsModel, GradReverse};

/// MDAN's registry entry.
pub const MDAN: MethodInfo = MethodInfo {
    name: "mdan",
    aliases: &["mdan_smooth"],
    label: "MDAN",
    help: "MDAN-smooth: one gradient-reversed domain head per source, smoothed max of the per-source losses",
    color: (120, 94, 240),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[
        Param {
            name: "gamma",
            default: 10.0,
            min: 1e-3,
            max: 1e3,
            help: "γ of the smoothed maximum (1/γ) log Σ exp(γ·loss_i); large γ → hard max (MDAN: 10)",
        },
        Param {
            name: "mu",
            default: 1.0,
            min: 0.0,
            max: 1e6,
            help: "weight μ of each source's domain loss inside the smoothed maximum",
        },
    ],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Mdan::new(kind, setup, vb)?))
}

/// The smoothed maximum (1/γ) log Σ_i exp(γ v_i) of the entries of `values` `[n]` (n ≥ 1),
/// computed stably around the (detached) maximum; it lies in [max v, max v + ln(n)/γ].
pub fn smoothed_max(values: &Tensor, gamma: f64) -> Result<Tensor> {
    let m = values.max(0)?.detach();
    let shifted = values.broadcast_sub(&m)?.affine(gamma, 0.0)?;
    shifted
        .exp()?
        .sum_all()?
        .log()?
        .affine(1.0 / gamma, 0.0)?
        .broadcast_add(&m)
}

/// MDAN-smooth's objective from the per-source task losses `task` `[n]` and domain losses
/// `domain` `[n]`: (1/γ) log Σ_i exp(γ (t_i + μ d_i)).
pub fn mdan_objective(task: &Tensor, domain: &Tensor, mu: f64, gamma: f64) -> Result<Tensor> {
    smoothed_max(&(task + domain.affine(mu, 0.0)?)?, gamma)
}

/// One source's domain loss as MDAN's code has it: the cross-entropy of the source rows
/// against domain 1 plus that of the target rows against domain 0 (each a mean over its rows).
pub fn source_domain_loss(source_logits: &Tensor, target_logits: &Tensor) -> Result<Tensor> {
    let dev = source_logits.device();
    let ns = source_logits.dim(0)?;
    let nt = target_logits.dim(0)?;
    let ones = Tensor::from_vec(vec![1u32; ns], ns, dev)?;
    let zeros = Tensor::from_vec(vec![0u32; nt], nt, dev)?;
    cross_entropy(source_logits, &ones)? + cross_entropy(target_logits, &zeros)?
}

/// MDAN-smooth with the CoDATS network.
pub struct Mdan {
    kind: MethodKind,
    model: CodatsModel,
    heads: Vec<DomainHead>,
    gamma: f64,
    mu: f64,
}

impl Mdan {
    /// Builds the network and one two-output domain head per source (`domain.{i}.*`).
    pub fn new(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Self> {
        if setup.n_sources == 0 {
            candle_core::bail!("method {kind} needs at least one source domain (--sources)");
        }
        let model = CodatsModel::new(setup.model_config(None), vb.clone())?;
        let heads = (0..setup.n_sources)
            .map(|i| {
                let vb = vb.pp("domain").pp(i.to_string());
                DomainHead::with_input(model.feature_dim(), 2, setup.kernels, vb)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            kind,
            model,
            heads,
            gamma: setup.param("gamma")?,
            mu: setup.param("mu")?,
        })
    }
}

impl Method for Mdan {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss", "domain_loss", "mdan_loss", "lambda"]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        let target = super::target_slice(batch, self.kind)?;
        if batch.sources.len() != self.heads.len() {
            candle_core::bail!(
                "{}: the batch has {} source slices but the model {} domain heads",
                self.kind,
                batch.sources.len(),
                self.heads.len()
            );
        }
        // One forward pass over [source_1 .. source_n, target] (shared batch statistics).
        let mut xs: Vec<&Tensor> = batch.sources.iter().map(|s| &s.x).collect();
        xs.push(&target.x);
        let features = self
            .model
            .features(&Tensor::cat(&xs, 0)?, true, Some(&mut *ctx.rng))?;
        let n_all = features.dim(0)?;
        let n_tgt = target.x.dim(0)?;
        let f_tgt = features.narrow(0, n_all - n_tgt, n_tgt)?;
        let lambda = grl_lambda(ctx.step, ctx.total_steps);
        let mut task = Vec::with_capacity(self.heads.len());
        let mut domain = Vec::with_capacity(self.heads.len());
        let mut start = 0;
        for (s, head) in batch.sources.iter().zip(&self.heads) {
            let n = s.x.dim(0)?;
            let y =
                s.y.as_ref()
                    .ok_or_else(|| candle_core::Error::Msg("unlabelled source".into()))?;
            let f_src = features.narrow(0, start, n)?;
            start += n;
            task.push(cross_entropy(&self.model.task_logits(&f_src)?, y)?);
            let pair = GradReverse::apply(&Tensor::cat(&[&f_src, &f_tgt], 0)?, lambda)?;
            let logits = head.forward(&pair, Some(ctx.rng))?;
            domain.push(source_domain_loss(
                &logits.narrow(0, 0, n)?,
                &logits.narrow(0, n, n_tgt)?,
            )?);
        }
        let task = Tensor::stack(&task, 0)?;
        let domain = Tensor::stack(&domain, 0)?;
        let loss = mdan_objective(&task, &domain, self.mu, self.gamma)?;
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", task.mean_all()?.to_scalar::<f32>()?),
                ("domain_loss", domain.mean_all()?.to_scalar::<f32>()?),
                ("mdan_loss", loss.to_scalar::<f32>()?),
                ("lambda", lambda as f32),
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

    /// As CoDATS: Adam on everything, and a second Adam (own state) on the domain heads.
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
    use crate::methods::{build, trainable_vars, Slice};
    use candle_core::Device;
    use candle_nn::VarMap;
    use rand_chacha::rand_core::SeedableRng;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_smoothed_max_matches_a_hand_computation() -> Result<()> {
        // γ = 1 over (1, 2): ln(e + e²) = 2 + ln(1 + e⁻¹) = 2.313261687518223.
        let got = smoothed_max(&t(&[1.0, 2.0]), 1.0)?.to_scalar::<f64>()?;
        assert!((got - 2.313_261_687_518_223).abs() < 1e-12, "{got}");
        // One source: the value itself, whatever γ.
        for gamma in [0.1, 10.0, 1e3] {
            let one = smoothed_max(&t(&[0.7]), gamma)?.to_scalar::<f64>()?;
            assert!((one - 0.7).abs() < 1e-12, "γ = {gamma}: {one}");
        }
        // Large γ: the hard max (no overflow at γ·v = 1e5); it lies within ln(n)/γ above it.
        let hard = smoothed_max(&t(&[100.0, 3.0, 99.0]), 1e3)?.to_scalar::<f64>()?;
        assert!((100.0..100.0 + 3f64.ln() / 1e3).contains(&hard), "{hard}");
        // The objective: t + μ d = (0.5 + 0.5·1, 1 + 0.5·2) = (1, 2) at γ = 1.
        let obj = mdan_objective(&t(&[0.5, 1.0]), &t(&[1.0, 2.0]), 0.5, 1.0)?;
        assert!((obj.to_scalar::<f64>()? - 2.313_261_687_518_223).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn the_mdan_objective_gradient_matches_finite_differences() -> Result<()> {
        let task = t(&[0.3, 1.2, 0.9]);
        let domain = t(&[1.4, 0.2, 0.7]);
        for gamma in [1.0, 10.0] {
            let e = max_error(|x| mdan_objective(x, &domain, 0.5, gamma), &task, 1e-6)?;
            assert!(e < 1e-8, "γ = {gamma}: task gradient error {e}");
            let e = max_error(|x| mdan_objective(&task, x, 0.5, gamma), &domain, 1e-6)?;
            assert!(e < 1e-8, "γ = {gamma}: domain gradient error {e}");
        }
        // And the per-source domain loss w.r.t. its logits.
        let ls = Tensor::from_vec(vec![0.2, -0.5, 1.0, 0.3, -0.1, 0.8], (3, 2), &Device::Cpu)?;
        let lt = Tensor::from_vec(vec![0.4, 0.1, -0.6, 0.9], (2, 2), &Device::Cpu)?;
        assert!(max_error(|x| source_domain_loss(x, &lt), &ls, 1e-6)? < 1e-8);
        assert!(max_error(|x| source_domain_loss(&ls, x), &lt, 1e-6)? < 1e-8);
        Ok(())
    }

    #[test]
    fn the_source_domain_loss_matches_a_hand_computation() -> Result<()> {
        // Source row logits (0, ln 3): p(domain 1) = 3/4; target rows (0, 0) and (ln 3, 0):
        // p(domain 0) = 1/2 and 3/4. d = −ln(3/4) − (ln(1/2) + ln(3/4)) / 2.
        let ln3 = 3f64.ln();
        let ls = Tensor::from_vec(vec![0.0, ln3], (1, 2), &Device::Cpu)?;
        let lt = Tensor::from_vec(vec![0.0, 0.0, ln3, 0.0], (2, 2), &Device::Cpu)?;
        let want = -(0.75f64).ln() - ((0.5f64).ln() + (0.75f64).ln()) / 2.0;
        let got = source_domain_loss(&ls, &lt)?.to_scalar::<f64>()?;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        Ok(())
    }

    fn setup(n_sources: usize) -> MethodSetup {
        MethodSetup {
            channels: 3,
            classes: 4,
            n_sources,
            given_proportions: None,
            target_train_proportions: None,
            ws_noise: None,
            ws: false,
            seed: 0,
            kernels: crate::nn::Kernels::Fast,
            gct: false,
            backbone: Default::default(),
            params: MethodKind::parse("mdan")
                .unwrap()
                .resolve_params(&Default::default())
                .unwrap(),
            image: None,
        }
    }

    fn slice(n: usize, seed: usize, labelled: bool) -> Slice {
        let v: Vec<f32> = (0..n * 3 * 16)
            .map(|i| ((i * 7 + seed * 13) as f32 * 0.31).sin())
            .collect();
        Slice {
            x: Tensor::from_vec(v, (n, 3, 16), &Device::Cpu).unwrap(),
            y: labelled.then(|| {
                Tensor::from_vec((0..n as u32).map(|i| i % 4).collect(), n, &Device::Cpu).unwrap()
            }),
            idx: (0..n).collect(),
            views: Vec::new(),
        }
    }

    #[test]
    fn one_two_output_head_per_source_and_one_source_is_dann() -> Result<()> {
        let kind = MethodKind::parse("mdan").expect("registered");
        for n_sources in [1, 3] {
            let varmap = VarMap::new();
            let method = build(kind, &setup(n_sources), &varmap)?;
            let outs: Vec<Vec<usize>> = trainable_vars(&varmap, "domain.")
                .into_iter()
                .filter(|(n, _)| n.ends_with("out.weight"))
                .map(|(_, v)| v.as_tensor().dims().to_vec())
                .collect();
            assert_eq!(outs, vec![vec![2, 500]; n_sources], "{n_sources} sources");
            assert_eq!(method.param_groups().len(), 2);
        }
        // With one source the loss is t + μ d: the logged task and domain losses add up to it.
        let varmap = VarMap::new();
        let mut method = build(kind, &setup(1), &varmap)?;
        crate::nn::glorot_init(&varmap, 1)?;
        let batch = Batch {
            sources: vec![slice(6, 1, true)],
            target: Some(slice(6, 2, false)),
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut ctx = StepContext {
            step: 3,
            total_steps: 10,
            rng: &mut rng,
        };
        let out = method.step(&batch, &mut ctx)?;
        let get = |k: &str| out.scalars.iter().find(|(n, _)| *n == k).unwrap().1;
        let total = out.loss.to_scalar::<f32>()?;
        assert!(
            (total - get("task_loss") - get("domain_loss")).abs() < 1e-5,
            "{total} vs {} + {}",
            get("task_loss"),
            get("domain_loss")
        );
        // A batch with more source slices than heads is refused.
        let two = Batch {
            sources: vec![slice(4, 1, true), slice(4, 3, true)],
            target: Some(slice(4, 2, false)),
        };
        let err = method
            .step(&two, &mut ctx)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("2 source slices but the model 1 domain heads"),
            "{err}"
        );
        Ok(())
    }
}
