//! Supervised baselines on the same network: `none` (sources only, the lower bound) and
//! `target_only` (the target's own training labels, the train-on-target bound).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::{
    concat, Batch, Method, MethodKind, MethodSetup, ParamGroup, Slice, StepContext, StepOutput,
};
use crate::losses::cross_entropy;
use crate::nn::{CodatsModel, ModelConfig};

/// Cross-entropy on labelled rows with the CoDATS FCN and task head (no domain head).
pub struct Supervised {
    kind: MethodKind,
    model: CodatsModel,
}

impl Supervised {
    /// Builds `none` or `target_only`.
    pub fn new(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Self> {
        let cfg = ModelConfig {
            channels: setup.channels,
            classes: setup.classes,
            domains: None,
            kernels: setup.kernels,
        };
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

    fn step(&mut self, batch: &Batch, _ctx: &mut StepContext) -> Result<StepOutput> {
        let labelled: Vec<&Slice> = match self.kind {
            MethodKind::TargetOnly => batch.target.iter().collect(),
            _ => batch.sources.iter().collect(),
        };
        let (x, y) = concat(&labelled)?;
        let y =
            y.ok_or_else(|| candle_core::Error::Msg("supervised step without labels".into()))?;
        let logits = self.model.task_logits(&self.model.features(&x, true)?)?;
        let loss = cross_entropy(&logits, &y)?;
        let task = loss.to_scalar::<f32>()?;
        Ok(StepOutput {
            loss,
            scalars: vec![("task_loss", task)],
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup {
            name: "model",
            prefix: "",
        }]
    }
}
