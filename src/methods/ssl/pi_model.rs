//! `pi_model` (Laine & Aila 2017; Sajjadi et al. 2016, as USB runs it): two stochastic weak views
//! of each unlabelled image should get the same prediction.
//!
//! loss = CE(labelled) + λ_u · ramp(t) · MSE(softmax(view 2), softmax(view 1).detach()), both
//! unlabelled forwards keeping the running statistics; ramp(t) linear over the first
//! `unsup_warmup` of training. USB's defaults: λ_u 10, warm-up 0.4.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::{
    build_with, ramped_output, scalars_with_entropy, supervised_loss, unlabelled, view, Objective,
    StudentTeacher, EMA_M, LAMBDA_ENT_OFF, UNSUP_WARMUP,
};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::ssl::{ramp_linear, softmax_mse};
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, StepContext, StepOutput,
    TargetUse, Task, Views,
};
use crate::nn::Mode;

/// λ_u of the consistency loss (USB's Π-model: 10).
pub const LAMBDA_U_PI: Param = Param {
    name: "lambda_u",
    default: 10.0,
    min: 0.0,
    max: 1000.0,
    help: "weight λ_u of the consistency loss (USB lambda_u)",
};

/// The registry entry.
pub const PI_MODEL: MethodInfo = MethodInfo {
    name: "pi_model",
    aliases: &["pimodel"],
    label: "Π-Model",
    help: "images: two weak views of an unlabelled image agree (MSE of softmaxes), ramped",
    color: (240, 228, 66),
    task: Task::Images,
    needs: DataNeeds {
        sources: true,
        target: TargetUse::Unlabelled,
        views: Views {
            labelled: &[Strength::Weak],
            unlabelled: &[Strength::Weak, Strength::Weak],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[LAMBDA_U_PI, UNSUP_WARMUP, EMA_M, LAMBDA_ENT_OFF],
    survey: Some(Survey {
        setting: Setting::SemiSupervised,
        techniques: &[Technique::CrossEntropy, Technique::Consistency],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let objective = PiModel {
        lambda_u: setup.param(LAMBDA_U_PI.name)?,
        warmup: setup.param(UNSUP_WARMUP.name)?,
        lambda_ent: setup.param(LAMBDA_ENT_OFF.name)?,
    };
    build_with(kind, setup, vb, objective)
}

/// The Π-model's loss.
pub struct PiModel {
    lambda_u: f64,
    warmup: f64,
    lambda_ent: f64,
}

impl Objective for PiModel {
    fn scalars(&self) -> Vec<&'static str> {
        scalars_with_entropy(&["sup_loss", "unsup_loss", "ramp"], self.lambda_ent)
    }

    fn loss(
        &mut self,
        nets: &StudentTeacher,
        batch: &Batch,
        ctx: &mut StepContext,
    ) -> Result<StepOutput> {
        let sup = supervised_loss(&nets.student, batch)?;
        let ulb = unlabelled(batch)?;
        let first = nets.student.logits(view(ulb, 0)?, Mode::TrainKeepStats)?;
        let second = nets.student.logits(view(ulb, 1)?, Mode::TrainKeepStats)?;
        let unsup = softmax_mse(&second, &first)?;
        let ramp = ramp_linear(ctx.step, ctx.total_steps, self.warmup);
        ramped_output(
            &sup,
            &unsup,
            self.lambda_u,
            ramp,
            &[],
            (&second, self.lambda_ent),
        )
    }
}
