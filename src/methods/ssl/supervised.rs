//! `supervised`: the labelled pool alone (cross-entropy on its weak view), the baseline every
//! semi-supervised table needs; evaluated with the same EMA weights as the other image methods.

use candle_core::{Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::{labelled, view, StudentTeacher, EMA_M};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, ParamGroup, StepContext,
    StepOutput, TargetUse, Task, Views,
};
use crate::nn::Mode;

/// The registry entry.
pub const SUPERVISED: MethodInfo = MethodInfo {
    name: "supervised",
    aliases: &[],
    label: "Supervised",
    help: "images: the labelled pool only (cross-entropy on weak views), the baseline",
    color: (120, 120, 120),
    task: Task::Images,
    needs: DataNeeds {
        sources: true,
        target: TargetUse::None,
        views: Views {
            labelled: &[Strength::Weak],
            unlabelled: &[],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[EMA_M],
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Supervised {
        kind,
        nets: StudentTeacher::new(setup, kind.as_str(), vb)?,
    }))
}

/// Cross-entropy on the labelled pool's weak views.
pub struct Supervised {
    kind: MethodKind,
    nets: StudentTeacher,
}

impl Method for Supervised {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["sup_loss"]
    }

    fn step(&mut self, batch: &Batch, _ctx: &mut StepContext) -> Result<StepOutput> {
        let (slice, y) = labelled(batch)?;
        let logits = self.nets.student.logits(view(slice, 0)?, Mode::Train)?;
        let loss = cross_entropy(&logits, y)?;
        let value = loss.to_scalar::<f32>()?;
        Ok(StepOutput {
            loss,
            scalars: vec![("sup_loss", value)],
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.nets.predict(x)
    }

    fn evaluated_weights(&self) -> &'static str {
        self.nets.evaluated_weights()
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        self.nets.param_groups()
    }

    fn after_init(&mut self, vars: &VarMap) -> Result<()> {
        self.nets.after_init(vars)
    }

    fn after_step(&mut self, vars: &VarMap, _ctx: &mut StepContext) -> Result<()> {
        self.nets.after_step(vars)
    }
}
