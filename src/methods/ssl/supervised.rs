//! `supervised`: the labelled pool alone (cross-entropy on its weak view), the baseline every
//! semi-supervised table needs; evaluated with the same EMA weights as the other image methods.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::{build_with, supervised_loss, Objective, StudentTeacher, EMA_M};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, StepContext, StepOutput,
    TargetUse, Task, Views,
};

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
    survey: Some(Survey {
        setting: Setting::Supervised,
        techniques: &[Technique::CrossEntropy],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    build_with(kind, setup, vb, Supervised)
}

/// Cross-entropy on the labelled pool's weak views.
pub struct Supervised;

impl Objective for Supervised {
    fn scalars(&self) -> Vec<&'static str> {
        vec!["sup_loss"]
    }

    fn loss(
        &mut self,
        nets: &StudentTeacher,
        batch: &Batch,
        _: &mut StepContext,
    ) -> Result<StepOutput> {
        let loss = supervised_loss(&nets.student, batch)?;
        let value = loss.to_scalar::<f32>()?;
        Ok(StepOutput {
            loss,
            scalars: vec![("sup_loss", value)],
            target_logits: None,
        })
    }
}
