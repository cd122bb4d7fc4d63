//! `entmin` (Grandvalet & Bengio 2005): confident predictions on unlabelled images, by minimising
//! their entropy: loss = CE(labelled) + λ_ent · ramp(t) · H(softmax(weak view)), the unlabelled
//! forward keeping the running statistics. Every other image method takes the same term through
//! its own `lambda_ent` parameter (VAT's default 0.06 is USB's VAT + EntMin).
//!
//! USB has no stand-alone EntMin; λ_ent 0.1 with the image methods' linear warm-up 0.4 is ours.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::{
    build_with, supervised_loss, unlabelled, view, Objective, StudentTeacher, EMA_M, UNSUP_WARMUP,
};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::ssl::{entropy, ramp_linear};
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, StepContext, StepOutput,
    TargetUse, Task, Views,
};
use crate::nn::Mode;

/// λ_ent of stand-alone entropy minimisation.
pub const LAMBDA_ENT: Param = Param {
    name: "lambda_ent",
    default: 0.1,
    min: 0.0,
    max: 100.0,
    help: "weight of the entropy of the unlabelled predictions",
};

/// The registry entry.
pub const ENTMIN: MethodInfo = MethodInfo {
    name: "entmin",
    aliases: &[],
    label: "EntMin",
    help: "images: entropy minimisation of the unlabelled predictions, ramped",
    color: (230, 159, 0),
    task: Task::Images,
    needs: DataNeeds {
        sources: true,
        target: TargetUse::Unlabelled,
        views: Views {
            labelled: &[Strength::Weak],
            unlabelled: &[Strength::Weak],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[LAMBDA_ENT, UNSUP_WARMUP, EMA_M],
    survey: Some(Survey {
        setting: Setting::SemiSupervised,
        techniques: &[Technique::CrossEntropy, Technique::EntropyMin],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let objective = EntMin {
        lambda_ent: setup.param(LAMBDA_ENT.name)?,
        warmup: setup.param(UNSUP_WARMUP.name)?,
    };
    build_with(kind, setup, vb, objective)
}

/// Entropy minimisation's loss.
pub struct EntMin {
    lambda_ent: f64,
    warmup: f64,
}

impl Objective for EntMin {
    fn scalars(&self) -> Vec<&'static str> {
        vec!["sup_loss", "entropy", "ramp"]
    }

    fn loss(
        &mut self,
        nets: &StudentTeacher,
        batch: &Batch,
        ctx: &mut StepContext,
    ) -> Result<StepOutput> {
        let sup = supervised_loss(&nets.student, batch)?;
        let logits = nets
            .student
            .logits(view(unlabelled(batch)?, 0)?, Mode::TrainKeepStats)?;
        let ent = entropy(&logits)?;
        let ramp = ramp_linear(ctx.step, ctx.total_steps, self.warmup);
        let scalars = vec![
            ("sup_loss", sup.to_scalar::<f32>()?),
            ("entropy", ent.to_scalar::<f32>()?),
            ("ramp", ramp as f32),
        ];
        let loss = (&sup + (&ent * (self.lambda_ent * ramp))?)?;
        Ok(StepOutput {
            loss,
            scalars,
            target_logits: None,
        })
    }
}
