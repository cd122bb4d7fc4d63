//! `fixmatch` (Sohn et al., NeurIPS 2020): a pseudo-label from the weak view of each unlabelled
//! image, kept when its confidence reaches τ, is the cross-entropy target of its strong view.
//!
//! One forward pass over [labelled weak (B), unlabelled weak (μB), unlabelled strong (μB)] (batch
//! norm statistics over all three, as USB's `use_cat`); loss = CE(labelled) + λ_u · mean over
//! the μB rows of mask · CE(strong, pseudo-label). USB's defaults: τ (`p_cutoff`) 0.95, λ_u 1,
//! μ 7 (`[images] uratio`), EMA 0.999 evaluated, SGD Nesterov 0.03 + weight decay 5e-4 + cosine.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::{
    build_with, labelled, scalars_with_entropy, unlabelled, view, with_entropy, Objective,
    StudentTeacher, EMA_M, LAMBDA_ENT_OFF,
};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::losses::ssl::fixmatch_unlabelled;
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, StepContext, StepOutput,
    TargetUse, Task, Views,
};
use crate::nn::Mode;

/// τ: the confidence a pseudo-label needs.
pub const P_CUTOFF: Param = Param {
    name: "p_cutoff",
    default: 0.95,
    min: 0.0,
    max: 1.0,
    help: "confidence threshold τ of a pseudo-label (USB p_cutoff)",
};

/// λ_u: the weight of the unlabelled loss.
pub const LAMBDA_U: Param = Param {
    name: "lambda_u",
    default: 1.0,
    min: 0.0,
    max: 100.0,
    help: "weight λ_u of the unlabelled loss (USB lambda_u)",
};

/// The registry entry.
pub const FIXMATCH: MethodInfo = MethodInfo {
    name: "fixmatch",
    aliases: &[],
    label: "FixMatch",
    help: "images: weak-view pseudo-labels (confidence ≥ τ) as targets of strong views",
    color: (213, 94, 0),
    task: Task::Images,
    needs: DataNeeds {
        sources: true,
        target: TargetUse::Unlabelled,
        views: Views {
            labelled: &[Strength::Weak],
            unlabelled: &[Strength::Weak, Strength::Strong],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[P_CUTOFF, LAMBDA_U, EMA_M, LAMBDA_ENT_OFF],
    survey: Some(Survey {
        setting: Setting::SemiSupervised,
        techniques: &[
            Technique::CrossEntropy,
            Technique::Consistency,
            Technique::PseudoLabels,
        ],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let objective = FixMatch {
        p_cutoff: setup.param(P_CUTOFF.name)?,
        lambda_u: setup.param(LAMBDA_U.name)?,
        lambda_ent: setup.param(LAMBDA_ENT_OFF.name)?,
    };
    build_with(kind, setup, vb, objective)
}

/// FixMatch's loss.
pub struct FixMatch {
    p_cutoff: f64,
    lambda_u: f64,
    lambda_ent: f64,
}

impl Objective for FixMatch {
    fn scalars(&self) -> Vec<&'static str> {
        scalars_with_entropy(&["sup_loss", "unsup_loss", "mask_rate"], self.lambda_ent)
    }

    fn loss(
        &mut self,
        nets: &StudentTeacher,
        batch: &Batch,
        _: &mut StepContext,
    ) -> Result<StepOutput> {
        let (lb, y) = labelled(batch)?;
        let ulb = unlabelled(batch)?;
        let (b, u) = (lb.idx.len(), ulb.idx.len());
        let x = Tensor::cat(&[view(lb, 0)?, view(ulb, 0)?, view(ulb, 1)?], 0)?;
        let logits = nets.student.logits(&x, Mode::Train)?;
        let sup = cross_entropy(&logits.narrow(0, 0, b)?, y)?;
        let weak = logits.narrow(0, b, u)?;
        let (unsup, mask_rate) =
            fixmatch_unlabelled(&weak, &logits.narrow(0, b + u, u)?, self.p_cutoff)?;
        let mut scalars = vec![
            ("sup_loss", sup.to_scalar::<f32>()?),
            ("unsup_loss", unsup.to_scalar::<f32>()?),
            ("mask_rate", mask_rate as f32),
        ];
        let loss = (&sup + (&unsup * self.lambda_u)?)?;
        let loss = with_entropy(loss, &weak, self.lambda_ent, &mut scalars)?;
        Ok(StepOutput {
            loss,
            scalars,
            target_logits: None,
        })
    }
}
