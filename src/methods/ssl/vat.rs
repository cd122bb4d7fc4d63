//! `vat` (Miyato et al. 2018, as USB runs it): predictions should not change under the small
//! input perturbation that changes them most (found by power iteration on the input gradient).
//!
//! loss = CE(labelled) + λ_u · ramp(t) · KL(p(x) ‖ p(x + r_adv)) + λ_ent · H(p(x)) on the weak
//! view of unlabelled images, r_adv of norm ε from `power_iters` iterations started at ξ·d,
//! d ~ N(0, I) from the run's RNG; unlabelled forwards keep the running statistics. USB's
//! defaults: λ_u 0.3, ε 6, ξ 1e-6, 1 iteration, λ_ent 0.06 (VAT + EntMin), warm-up 0.4.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::{
    build_with, ramped_output, scalars_with_entropy, supervised_loss, unlabelled, view, Objective,
    StudentTeacher, EMA_M, UNSUP_WARMUP,
};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::ssl::{ramp_linear, vat_loss};
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, StepContext, StepOutput,
    TargetUse, Task, Views,
};
use crate::nn::Mode;

/// λ_u of the VAT loss.
pub const LAMBDA_U_VAT: Param = Param {
    name: "lambda_u",
    default: 0.3,
    min: 0.0,
    max: 100.0,
    help: "weight λ_u of the virtual adversarial loss (USB lambda_u)",
};

/// ε: the norm of the adversarial perturbation.
pub const VAT_EPS: Param = Param {
    name: "vat_eps",
    default: 6.0,
    min: 0.0,
    max: 1000.0,
    help: "L2 norm ε of the adversarial perturbation per image (USB vat_eps)",
};

/// ξ: the finite-difference step of the power iteration.
pub const XI: Param = Param {
    name: "xi",
    default: 1e-6,
    min: 1e-12,
    max: 10.0,
    help: "finite-difference step ξ of the power iteration (USB xi)",
};

/// Power iterations.
pub const POWER_ITERS: Param = Param {
    name: "power_iters",
    default: 1.0,
    min: 1.0,
    max: 20.0,
    help: "power iterations finding r_adv (USB: 1)",
};

/// Entropy minimisation's weight in VAT + EntMin (USB's vat: 0.06).
pub const LAMBDA_ENT_VAT: Param = Param {
    name: "lambda_ent",
    default: 0.06,
    min: 0.0,
    max: 100.0,
    help: "weight of entropy minimisation on the unlabelled predictions (USB lambda_ent)",
};

/// The registry entry.
pub const VAT: MethodInfo = MethodInfo {
    name: "vat",
    aliases: &[],
    label: "VAT",
    help: "images: virtual adversarial training (+ entropy minimisation, USB's VAT), ramped",
    color: (204, 121, 167),
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
    params: &[
        LAMBDA_U_VAT,
        VAT_EPS,
        XI,
        POWER_ITERS,
        UNSUP_WARMUP,
        EMA_M,
        LAMBDA_ENT_VAT,
    ],
    survey: Some(Survey {
        setting: Setting::SemiSupervised,
        techniques: &[
            Technique::CrossEntropy,
            Technique::Consistency,
            Technique::EntropyMin,
            Technique::Vat,
        ],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let objective = Vat {
        lambda_u: setup.param(LAMBDA_U_VAT.name)?,
        eps: setup.param(VAT_EPS.name)?,
        xi: setup.param(XI.name)?,
        iters: setup.param(POWER_ITERS.name)?.round() as usize,
        warmup: setup.param(UNSUP_WARMUP.name)?,
        lambda_ent: setup.param(LAMBDA_ENT_VAT.name)?,
    };
    build_with(kind, setup, vb, objective)
}

/// VAT's loss.
pub struct Vat {
    lambda_u: f64,
    eps: f64,
    xi: f64,
    iters: usize,
    warmup: f64,
    lambda_ent: f64,
}

impl Objective for Vat {
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
        let x = view(unlabelled(batch)?, 0)?;
        let logits = nets.student.logits(x, Mode::TrainKeepStats)?;
        let forward = |x: &candle_core::Tensor| nets.student.logits(x, Mode::TrainKeepStats);
        let unsup = vat_loss(&forward, x, &logits, self.xi, self.eps, self.iters, ctx.rng)?;
        let ramp = ramp_linear(ctx.step, ctx.total_steps, self.warmup);
        ramped_output(
            &sup,
            &unsup,
            self.lambda_u,
            ramp,
            &[],
            (&logits, self.lambda_ent),
        )
    }
}
