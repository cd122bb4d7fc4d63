//! `pseudo_label` (Lee 2013, as USB runs it): the network's own confident predictions on the
//! weak view of unlabelled images are their targets.
//!
//! loss = CE(labelled) + λ_u · ramp(t) · mean over the μB rows of mask · CE(weak, argmax), with
//! the pseudo-label and mask (max prob ≥ `p_cutoff`) from the same, detached, logits and the
//! unlabelled forward keeping the running statistics (USB's frozen BN); ramp(t) linear over the
//! first `unsup_warmup` of training. USB's defaults: `p_cutoff` 0.95, λ_u 1, warm-up 0.4.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::fixmatch::{LAMBDA_U, P_CUTOFF};
use super::{
    build_with, ramped_output, scalars_with_entropy, supervised_loss, unlabelled, view, Objective,
    StudentTeacher, EMA_M, LAMBDA_ENT_OFF, UNSUP_WARMUP,
};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::ssl::{masked_cross_entropy, pseudo_labels, ramp_linear};
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, StepContext, StepOutput,
    TargetUse, Task, Views,
};
use crate::nn::Mode;

/// The registry entry.
pub const PSEUDO_LABEL: MethodInfo = MethodInfo {
    name: "pseudo_label",
    aliases: &["pseudolabel"],
    label: "Pseudo-Label",
    help: "images: confident own predictions on weak views as targets (Lee 2013), ramped",
    color: (86, 180, 233),
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
    params: &[P_CUTOFF, LAMBDA_U, UNSUP_WARMUP, EMA_M, LAMBDA_ENT_OFF],
    survey: Some(Survey {
        setting: Setting::SemiSupervised,
        techniques: &[Technique::CrossEntropy, Technique::PseudoLabels],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let objective = PseudoLabel {
        p_cutoff: setup.param(P_CUTOFF.name)?,
        lambda_u: setup.param(LAMBDA_U.name)?,
        warmup: setup.param(UNSUP_WARMUP.name)?,
        lambda_ent: setup.param(LAMBDA_ENT_OFF.name)?,
    };
    build_with(kind, setup, vb, objective)
}

/// Pseudo-Label's loss.
pub struct PseudoLabel {
    p_cutoff: f64,
    lambda_u: f64,
    warmup: f64,
    lambda_ent: f64,
}

impl Objective for PseudoLabel {
    fn scalars(&self) -> Vec<&'static str> {
        scalars_with_entropy(
            &["sup_loss", "unsup_loss", "mask_rate", "ramp"],
            self.lambda_ent,
        )
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
        let (hard, mask) = pseudo_labels(&logits, self.p_cutoff)?;
        let unsup = masked_cross_entropy(&logits, &hard, &mask)?;
        let ramp = ramp_linear(ctx.step, ctx.total_steps, self.warmup);
        let mask_rate = ("mask_rate", mask.mean_all()?.to_scalar::<f32>()?);
        ramped_output(
            &sup,
            &unsup,
            self.lambda_u,
            ramp,
            &[mask_rate],
            (&logits, self.lambda_ent),
        )
    }
}
