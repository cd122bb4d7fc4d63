//! `mean_teacher` (Tarvainen & Valpola 2017, as USB runs it): the student's prediction on one weak
//! view should match its EMA teacher's on another.
//!
//! loss = CE(labelled) + λ_u · ramp(t) · MSE(softmax(student(view 2)), softmax(teacher(view 1))),
//! the teacher (`ema_m` 0.999, also the evaluated weights) giving targets without gradients, both
//! unlabelled forwards keeping the running statistics; ramp(t) linear over the first
//! `unsup_warmup` of training. USB's defaults: λ_u 50, warm-up 0.4, EMA 0.999.

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

/// λ_u of the consistency loss (USB's Mean Teacher: 50).
pub const LAMBDA_U_MT: Param = Param {
    name: "lambda_u",
    default: 50.0,
    min: 0.0,
    max: 1000.0,
    help: "weight λ_u of the consistency loss (USB lambda_u)",
};

/// The registry entry.
pub const MEAN_TEACHER: MethodInfo = MethodInfo {
    name: "mean_teacher",
    aliases: &["meanteacher"],
    label: "Mean Teacher",
    help: "images: the student agrees with its EMA teacher on another weak view, ramped",
    color: (0, 114, 178),
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
    params: &[LAMBDA_U_MT, UNSUP_WARMUP, EMA_M, LAMBDA_ENT_OFF],
    survey: Some(Survey {
        setting: Setting::SemiSupervised,
        techniques: &[
            Technique::CrossEntropy,
            Technique::Consistency,
            Technique::EmaTeacher,
        ],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    if setup.param(EMA_M.name)? <= 0.0 {
        candle_core::bail!("mean_teacher needs a teacher: --param ema_m must be above 0");
    }
    let objective = MeanTeacher {
        lambda_u: setup.param(LAMBDA_U_MT.name)?,
        warmup: setup.param(UNSUP_WARMUP.name)?,
        lambda_ent: setup.param(LAMBDA_ENT_OFF.name)?,
    };
    build_with(kind, setup, vb, objective)
}

/// Mean Teacher's loss.
pub struct MeanTeacher {
    lambda_u: f64,
    warmup: f64,
    lambda_ent: f64,
}

impl Objective for MeanTeacher {
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
        let target = nets.teacher_logits(view(ulb, 0)?, Mode::TrainKeepStats)?;
        let student = nets.student.logits(view(ulb, 1)?, Mode::TrainKeepStats)?;
        let unsup = softmax_mse(&student, &target)?;
        let ramp = ramp_linear(ctx.step, ctx.total_steps, self.warmup);
        ramped_output(
            &sup,
            &unsup,
            self.lambda_u,
            ramp,
            &[],
            (&student, self.lambda_ent),
        )
    }
}
