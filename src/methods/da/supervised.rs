//! Supervised baselines on the same network: `none` (sources only, the lower bound) and
//! `target_only` (the target's own training labels, the train-on-target bound).

use crate::methods::{Task, Views};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::methods::{
    concat, Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Slice, StepContext,
    StepOutput, TargetUse,
};
use crate::nn::CodatsModel;

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Supervised::new(kind, setup, vb)?))
}

/// Source-only lower bound: train on the labelled sources, never see the target.
pub const NONE: MethodInfo = MethodInfo {
    name: "none",
    aliases: &[],
    label: "No Adaptation",
    help: "source only: train on the labelled sources, never see the target",
    color: (120, 120, 120),
    task: Task::Adaptation,
    needs: DataNeeds {
        sources: true,
        target: TargetUse::None,
        views: Views::NONE,
    },
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[],
    survey: None,
    backbone: None,
    build,
};

/// "Train on Target" bound: train on the target's own training labels and select on its own
/// validation split (the reference's `none --sources=<target>`).
pub const TARGET_ONLY: MethodInfo = MethodInfo {
    name: "target_only",
    aliases: &["upper"],
    label: "Train on Target",
    help: "train on the target's own labels and select on its validation split (the bound)",
    color: (0, 158, 115),
    task: Task::Adaptation,
    needs: DataNeeds {
        sources: false,
        target: TargetUse::Labelled,
        views: Views::NONE,
    },
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[],
    survey: None,
    backbone: None,
    build,
};

/// Cross-entropy on labelled rows with the CoDATS FCN and task head (no domain head).
pub struct Supervised {
    kind: MethodKind,
    model: CodatsModel,
}

impl Supervised {
    /// Builds `none` or `target_only`.
    pub fn new(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Self> {
        let cfg = setup.model_config(None);
        Ok(Self {
            kind,
            model: CodatsModel::new(cfg, vb)?,
        })
    }
}

impl Method for Supervised {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss"]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        let labelled: Vec<&Slice> = if self.kind.data_needs().sources {
            batch.sources.iter().collect()
        } else {
            batch.target.iter().collect()
        };
        let (x, y) = concat(&labelled)?;
        let y =
            y.ok_or_else(|| candle_core::Error::Msg("supervised step without labels".into()))?;
        let logits =
            self.model
                .task_logits(&self.model.features(&x, true, Some(&mut *ctx.rng))?)?;
        let loss = cross_entropy(&logits, &y)?;
        let task = loss.to_scalar::<f32>()?;
        Ok(StepOutput {
            loss,
            scalars: vec![("task_loss", task)],
            target_logits: None,
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.model.features(x, false, None).map(Some)
    }
}
