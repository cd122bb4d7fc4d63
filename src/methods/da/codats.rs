//! CoDATS (Wilson, Doppa & Cook, KDD 2020): multi-source domain-adversarial training with the
//! FCN, and CoDATS-WS, which adds the DA-WS weak-supervision loss on target label proportions.

use crate::methods::{Task, Views};
use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, ParamGroup, StepContext,
    StepOutput, TargetUse,
};
use crate::nn::{grl_lambda, CodatsModel};

const ADAPTS: DataNeeds = DataNeeds {
    sources: true,
    target: TargetUse::Unlabelled,
    views: Views::NONE,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Codats::new(kind, setup, vb)?))
}

/// CoDATS: multi-source domain-adversarial training (DANN with the FCN).
pub const CODATS: MethodInfo = MethodInfo {
    name: "codats",
    aliases: &[],
    label: "CoDATS",
    help: "CoDATS: multi-source domain-adversarial training (DANN with the FCN)",
    color: (0, 114, 178),
    task: Task::Adaptation,
    needs: ADAPTS,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[],
    survey: None,
    backbone: None,
    build,
};

/// CoDATS-WS: CoDATS plus DA-WS, weak supervision by known target label proportions.
pub const CODATS_WS: MethodInfo = MethodInfo {
    name: "codats_ws",
    aliases: &[],
    label: "CoDATS-WS",
    help: "CoDATS-WS: CoDATS plus the DA-WS loss towards known target label proportions",
    color: (230, 159, 0),
    task: Task::Adaptation,
    needs: ADAPTS,
    batch_division: BatchDivision::Sources,
    uses_proportions: true,
    params: &[],
    survey: None,
    backbone: None,
    build,
};

/// How the domain head tells domains apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainHead {
    /// One class per domain: target 0, source i → i + 1 (CoDATS).
    PerDomain,
    /// Two classes: target 0, every source 1 (DANN over grouped sources, `dann_gs`).
    Grouped,
}

/// CoDATS / CoDATS-WS, and DANN-GS (the same network with a source-vs-target domain head).
pub struct Codats {
    kind: MethodKind,
    model: CodatsModel,
    head: DomainHead,
}

impl Codats {
    /// Builds `codats` or `codats_ws` (whose DA-WS loss [`crate::methods::build`] adds with
    /// [`crate::methods::ws::WeakSupervision`]).
    pub fn new(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Self> {
        Self::with_head(kind, setup, vb, DomainHead::PerDomain)
    }

    /// Builds it with domain head `head`.
    pub fn with_head(
        kind: MethodKind,
        setup: &MethodSetup,
        vb: VarBuilder,
        head: DomainHead,
    ) -> Result<Self> {
        let domains = match head {
            DomainHead::PerDomain => setup.n_sources + 1,
            DomainHead::Grouped => 2,
        };
        let cfg = setup.model_config(Some(domains));
        Ok(Self {
            kind,
            model: CodatsModel::new(cfg, vb)?,
            head,
        })
    }
}

/// Domain-classifier labels of a batch laid out as [source_1 .. source_n, target]: source i
/// (0-based, `sizes[i]` rows) is domain i + 1, the target's `n_target` rows are domain 0.
pub fn domain_labels(sizes: &[usize], n_target: usize) -> Vec<u32> {
    let mut labels = Vec::with_capacity(sizes.iter().sum::<usize>() + n_target);
    for (i, &n) in sizes.iter().enumerate() {
        labels.extend(std::iter::repeat_n(i as u32 + 1, n));
    }
    labels.extend(std::iter::repeat_n(0u32, n_target));
    labels
}

/// Domain labels of the same layout for a source-vs-target head: every source row 1, target 0.
pub fn grouped_domain_labels(sizes: &[usize], n_target: usize) -> Vec<u32> {
    let mut labels = vec![1u32; sizes.iter().sum()];
    labels.extend(std::iter::repeat_n(0u32, n_target));
    labels
}

impl Method for Codats {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        let mut v = vec!["task_loss", "domain_loss", "lambda"];
        if matches!(self.model.fe, crate::nn::series::SeriesFe::Vrnn(_)) {
            v.extend(["vrnn_kl", "vrnn_nll"]);
        }
        v
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        let target = super::target_slice(batch, self.kind)?;
        let dev = Device::Cpu;
        // One forward pass over [source_1 .. source_n, target].
        let mut xs: Vec<&Tensor> = batch.sources.iter().map(|s| &s.x).collect();
        xs.push(&target.x);
        let x = Tensor::cat(&xs, 0)?;
        let n_src: usize = batch
            .sources
            .iter()
            .map(|s| s.x.dim(0))
            .sum::<Result<usize>>()?;
        let n_tgt = target.x.dim(0)?;
        let sizes = batch
            .sources
            .iter()
            .map(|s| s.x.dim(0))
            .collect::<Result<Vec<usize>>>()?;
        let domain_labels = match self.head {
            DomainHead::PerDomain => domain_labels(&sizes, n_tgt),
            DomainHead::Grouped => grouped_domain_labels(&sizes, n_tgt),
        };
        let mut ys: Vec<&Tensor> = Vec::new();
        for s in &batch.sources {
            ys.push(
                s.y.as_ref()
                    .ok_or_else(|| candle_core::Error::Msg("unlabelled source".into()))?,
            );
        }
        let y_task = Tensor::cat(&ys, 0)?;
        let y_domain = Tensor::from_vec(domain_labels, n_src + n_tgt, &dev)?;

        // VRADA's VRNN adds its negative ELBO over every row, sources and target (weight 1,
        // as the CoDATS authors' code); the other feature extractors have no loss of their own.
        let (features, vrnn) = self.model.features_with_loss(&x, Some(&mut *ctx.rng))?;
        let logits = self.model.task_logits(&features)?;
        let task_loss = cross_entropy(&logits.narrow(0, 0, n_src)?, &y_task)?;
        let lambda = grl_lambda(ctx.step, ctx.total_steps);
        let domain_logits = self.model.domain_logits(&features, lambda, Some(ctx.rng))?;
        let domain_loss = cross_entropy(&domain_logits, &y_domain)?;
        let mut loss = (&task_loss + &domain_loss)?;
        let mut scalars = vec![
            ("task_loss", task_loss.to_scalar::<f32>()?),
            ("domain_loss", domain_loss.to_scalar::<f32>()?),
            ("lambda", lambda as f32),
        ];
        if let Some(v) = vrnn {
            loss = (loss + v.loss()?)?;
            scalars.push(("vrnn_kl", v.kl.to_scalar::<f32>()?));
            scalars.push(("vrnn_nll", v.nll.to_scalar::<f32>()?));
        }
        Ok(StepOutput {
            loss,
            scalars,
            target_logits: Some(logits.narrow(0, n_src, n_tgt)?),
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.model.features(x, false, None).map(Some)
    }

    /// The reference's two updates per step: Adam on all parameters with task + domain loss,
    /// then a second Adam (own state) on the domain head alone. The domain head's gradient of
    /// the total loss equals that of the domain loss (the task loss does not reach it), so both
    /// groups step on the one backward pass, as the reference's persistent tape does.
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
    use crate::methods::{build, trainable_vars};
    use candle_nn::VarMap;

    #[test]
    fn target_is_domain_zero_and_source_i_is_domain_i_plus_one() {
        assert_eq!(domain_labels(&[2, 1, 3], 2), vec![1, 1, 2, 3, 3, 3, 0, 0]);
        assert_eq!(domain_labels(&[1], 0), vec![1]);
        assert_eq!(domain_labels(&[], 2), vec![0, 0]);
    }

    #[test]
    fn the_domain_head_gets_two_adam_updates_per_batch_and_the_rest_one() -> Result<()> {
        let setup = MethodSetup {
            channels: 3,
            classes: 4,
            n_sources: 2,
            given_proportions: Some(vec![0.25; 4]),
            target_train_proportions: None,
            ws_noise: None,
            ws: false,
            seed: 0,
            kernels: crate::nn::Kernels::Fast,
            gct: false,
            backbone: Default::default(),
            params: Default::default(),
            image: None,
        };
        for kind in [MethodKind::CODATS, MethodKind::CODATS_WS] {
            let varmap = VarMap::new();
            let method = build(kind, &setup, &varmap)?;
            let groups = method.param_groups();
            let all = trainable_vars(&varmap, "");
            assert!(all.iter().any(|(n, _)| n.starts_with("domain.")));
            for (name, _) in &all {
                let updates = groups
                    .iter()
                    .filter(|g| {
                        trainable_vars(&varmap, g.prefix)
                            .iter()
                            .any(|(n, _)| n == name)
                    })
                    .count();
                let want = if name.starts_with("domain.") { 2 } else { 1 };
                assert_eq!(
                    updates, want,
                    "{kind}: {name} is in {updates} optimiser groups"
                );
            }
        }
        Ok(())
    }
}
