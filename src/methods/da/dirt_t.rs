//! VADA and DIRT-T (Shu et al., "A DIRT-T Approach to Unsupervised Domain Adaptation",
//! ICLR 2018) on the CoDATS network, in one method with a two-phase schedule.
//!
//! **VADA** (the first `vada_fraction` of the steps): source cross-entropy
//! + `domain_weight` · a source-vs-target domain loss through a gradient-reversal layer (factor 1,
//!   no schedule; the CoDATS domain head with 2 outputs, all sources pooled as "source")
//! + `cond_ent_weight` · the conditional entropy of the target predictions
//! + `vat_weight` · (VAT on the source + VAT on the target), the KL divergence between the
//!   prediction and the prediction under the virtual adversarial perturbation of norm
//!   `vat_eps` ([`crate::losses::ssl::vat_loss`], ξ 1e-6, one power iteration).
//!
//! **DIRT-T** (the remaining steps): the target alone refines the VADA solution, the teacher
//! being the VADA model frozen at the switch (its eval-mode predictions):
//! `cond_ent_weight` · target entropy + `vat_weight` · target VAT
//! + `teacher_weight` · KL(teacher ‖ model) on the target. The paper's teacher is the previous
//! iterate of a sequence of such problems; a single frozen VADA teacher is its first (and
//! AdaTime, whose DIRT is VADA only, has none), the default; `refresh_every=N` makes the
//! current network the teacher every N DIRT-T steps (the sequence). `vada_fraction=1` runs
//! VADA alone.
//!
//! Defaults: AdaTime's UCI HAR weights relative to its task weight (domain 1.90, entropy 1.21,
//! VAT 7.71 against 9.68), AdaTime's VAT radius 3.5, and the paper's β = λ_t (its setting for
//! most tasks: the KL weighs as much as the target entropy). The perturbed forwards keep the
//! batch-norm running statistics; the VADA forward is one pass over [sources, target], as the
//! other methods here.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::codats::grouped_domain_labels;
use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::losses::ssl::{entropy, kl_div_softmax, vat_loss};
use crate::methods::ema::Ema;
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, ParamGroup, StepContext,
    StepOutput, Task,
};
use crate::nn::{CodatsModel, Mode};

/// AdaTime's UCI HAR task weight, the unit of the defaults.
const ADATIME_TASK: f64 = 9.678_610_212_902_54;

/// VAT's finite-difference step ξ (AdaTime, USB).
pub const VAT_XI: f64 = 1e-6;

/// DIRT-T's registry entry.
pub const DIRT_T: MethodInfo = MethodInfo {
    name: "dirt_t",
    aliases: &[],
    label: "VADA + DIRT-T",
    help: "VADA (adversarial + target entropy + VAT), then DIRT-T refinement on the target with the VADA model as teacher",
    color: (128, 0, 128),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[
        Param {
            name: "domain_weight",
            default: 1.901_214_551_512_904_4 / ADATIME_TASK,
            min: 0.0,
            max: 1e6,
            help: "weight λ_d of the adversarial domain loss (AdaTime HAR: 1.90 against a task weight of 9.68)",
        },
        Param {
            name: "cond_ent_weight",
            default: 1.207_215_189_686_44 / ADATIME_TASK,
            min: 0.0,
            max: 1e6,
            help: "weight λ_t of the target conditional entropy (AdaTime HAR: 1.21 against 9.68)",
        },
        Param {
            name: "vat_weight",
            default: 7.710_284_313_604_585_5 / ADATIME_TASK,
            min: 0.0,
            max: 1e6,
            help: "weight of VAT (source + target in VADA, target in DIRT-T; AdaTime HAR: 7.71 against 9.68)",
        },
        Param {
            name: "vat_eps",
            default: 3.5,
            min: 0.0,
            max: 1e4,
            help: "L2 norm of the virtual adversarial perturbation per window (AdaTime: 3.5)",
        },
        Param {
            name: "vada_fraction",
            default: 0.5,
            min: 0.0,
            max: 1.0,
            help: "fraction of the steps trained with VADA before the DIRT-T refinement (1: VADA only)",
        },
        Param {
            name: "teacher_weight",
            default: 1.207_215_189_686_44 / ADATIME_TASK,
            min: 0.0,
            max: 1e6,
            help: "weight β of KL(teacher ‖ model) in DIRT-T (Shu et al.: β = λ_t for most tasks)",
        },
        Param {
            name: "refresh_every",
            default: 0.0,
            min: 0.0,
            max: 1e9,
            help: "DIRT-T steps after which the teacher becomes the current network (Shu et al.'s \
                   iterated refinement; 0: the VADA teacher throughout)",
        },
    ],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(DirtT::new(kind, setup, vb)?))
}

/// The first step of the DIRT-T phase in a run of `total_steps` (steps `0..=total_steps`).
pub fn switch_step(vada_fraction: f64, total_steps: usize) -> usize {
    if vada_fraction >= 1.0 {
        return usize::MAX;
    }
    (vada_fraction * total_steps as f64).round() as usize
}

/// Whether the teacher becomes a copy of the network after the step with index `step`: after
/// the last VADA step (`switch` − 1), then after every `refresh_every`-th DIRT-T step (never
/// again when it is 0).
pub fn teacher_copied_after(step: usize, switch: usize, refresh_every: usize) -> bool {
    let done = step + 1;
    if done == switch {
        return true;
    }
    refresh_every > 0 && done > switch && (done - switch) % refresh_every == 0
}

/// DIRT-T's refinement loss on target logits `[n, K]` given the teacher's logits `[n, K]` and
/// the target VAT loss: (`cond_ent_weight` · H, `teacher_weight` · KL(teacher ‖ model)) and
/// their sum with `vat_weight` · VAT, returned as (entropy, kl, total).
pub fn dirt_t_loss(
    logits: &Tensor,
    teacher_logits: &Tensor,
    vat: &Tensor,
    w: &Weights,
) -> Result<(Tensor, Tensor, Tensor)> {
    let ent = entropy(logits)?;
    let kl = kl_div_softmax(teacher_logits, logits)?;
    let total =
        ((ent.affine(w.cond_ent, 0.0)? + kl.affine(w.teacher, 0.0)?)? + vat.affine(w.vat, 0.0)?)?;
    Ok((ent, kl, total))
}

/// The loss weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// λ_d.
    pub domain: f64,
    /// λ_t.
    pub cond_ent: f64,
    /// VAT's weight.
    pub vat: f64,
    /// β.
    pub teacher: f64,
}

/// VADA + DIRT-T. The trained network is `fe.*`, `task.*`, `domain.*`; the frozen teacher
/// `teacher.fe.*`, `teacher.task.*` (no optimiser steps it).
pub struct DirtT {
    kind: MethodKind,
    model: CodatsModel,
    teacher: CodatsModel,
    /// Student → teacher copies of the feature extractor and the task head.
    copies: [Ema; 2],
    weights: Weights,
    vat_eps: f64,
    vada_fraction: f64,
    /// DIRT-T steps between teacher refreshes (0: never).
    refresh_every: usize,
}

impl DirtT {
    /// Builds the network with a 2-output domain head, and the teacher.
    pub fn new(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            kind,
            model: CodatsModel::new(setup.model_config(Some(2)), vb.clone())?,
            teacher: CodatsModel::new(setup.model_config(None), vb.pp("teacher"))?,
            copies: [
                Ema::new(0.0, "fe.", "teacher.fe."),
                Ema::new(0.0, "task.", "teacher.task."),
            ],
            weights: Weights {
                domain: setup.param("domain_weight")?,
                cond_ent: setup.param("cond_ent_weight")?,
                vat: setup.param("vat_weight")?,
                teacher: setup.param("teacher_weight")?,
            },
            vat_eps: setup.param("vat_eps")?,
            vada_fraction: setup.param("vada_fraction")?,
            refresh_every: setup.param("refresh_every")?.round() as usize,
        })
    }

    fn freeze_teacher(&self, vars: &candle_nn::VarMap) -> Result<()> {
        self.copies.iter().try_for_each(|c| c.copy(vars))
    }

    /// Logits of windows under the perturbation VAT tries (batch statistics, running ones kept).
    fn perturbed(&self, x: &Tensor) -> Result<Tensor> {
        self.model
            .task_logits(&self.model.features_in(x, Mode::TrainKeepStats, None)?)
    }

    fn vat(&self, x: &Tensor, clean: &Tensor, ctx: &mut StepContext) -> Result<Tensor> {
        let forward = |x: &Tensor| self.perturbed(x);
        vat_loss(&forward, x, clean, VAT_XI, self.vat_eps, 1, ctx.rng)
    }
}

impl Method for DirtT {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec![
            "task_loss",
            "domain_loss",
            "entropy_loss",
            "vat_loss",
            "teacher_kl",
            "phase",
        ]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        let target = super::target_slice(batch, self.kind)?;
        let sources: Vec<&crate::methods::Slice> = batch.sources.iter().collect();
        let (xs, ys) = crate::methods::concat(&sources)?;
        let ys = ys.ok_or_else(|| candle_core::Error::Msg("unlabelled source".into()))?;
        let xt = &target.x;
        let w = self.weights;
        if ctx.step >= switch_step(self.vada_fraction, ctx.total_steps) {
            // DIRT-T: the target alone (its batch statistics), the frozen teacher's targets.
            let logits =
                self.model
                    .task_logits(&self.model.features(xt, true, Some(&mut *ctx.rng))?)?;
            let teacher = self.teacher.predict(xt)?.detach();
            let vat = self.vat(xt, &logits, ctx)?;
            let (ent, kl, loss) = dirt_t_loss(&logits, &teacher, &vat, &w)?;
            // The source risk, for the log only.
            let task_loss = cross_entropy(&self.model.predict(&xs)?, &ys)?;
            return Ok(StepOutput {
                scalars: vec![
                    ("task_loss", task_loss.to_scalar::<f32>()?),
                    ("domain_loss", 0.0),
                    ("entropy_loss", ent.to_scalar::<f32>()?),
                    ("vat_loss", vat.to_scalar::<f32>()?),
                    ("teacher_kl", kl.to_scalar::<f32>()?),
                    ("phase", 2.0),
                ],
                loss,
                target_logits: Some(logits),
            });
        }
        let (n_src, n_tgt) = (xs.dim(0)?, xt.dim(0)?);
        let features =
            self.model
                .features(&Tensor::cat(&[&xs, xt], 0)?, true, Some(&mut *ctx.rng))?;
        let logits = self.model.task_logits(&features)?;
        let (ls, lt) = (logits.narrow(0, 0, n_src)?, logits.narrow(0, n_src, n_tgt)?);
        let task_loss = cross_entropy(&ls, &ys)?;
        let labels = Tensor::from_vec(
            grouped_domain_labels(&[n_src], n_tgt),
            n_src + n_tgt,
            features.device(),
        )?;
        let domain_logits = self.model.domain_logits(&features, 1.0, Some(ctx.rng))?;
        let domain_loss = cross_entropy(&domain_logits, &labels)?;
        let ent = entropy(&lt)?;
        let vat = (self.vat(&xs, &ls, ctx)? + self.vat(xt, &lt, ctx)?)?;
        let loss = (((&task_loss + domain_loss.affine(w.domain, 0.0)?)?
            + ent.affine(w.cond_ent, 0.0)?)?
            + vat.affine(w.vat, 0.0)?)?;
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", task_loss.to_scalar::<f32>()?),
                ("domain_loss", domain_loss.to_scalar::<f32>()?),
                ("entropy_loss", ent.to_scalar::<f32>()?),
                ("vat_loss", vat.to_scalar::<f32>()?),
                ("teacher_kl", 0.0),
                ("phase", 1.0),
            ],
            loss,
            target_logits: Some(lt),
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.model.features(x, false, None).map(Some)
    }

    /// Adam on the network (one state per part; the teacher is never stepped).
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![
            ParamGroup::new("fe", "fe."),
            ParamGroup::new("task", "task."),
            ParamGroup::new("domain_head", "domain."),
        ]
    }

    fn after_init(&mut self, vars: &candle_nn::VarMap) -> Result<()> {
        self.freeze_teacher(vars)
    }

    /// At the end of the VADA phase the teacher becomes a copy of the network, and again every
    /// `refresh_every` DIRT-T steps when that is set.
    fn after_step(&mut self, vars: &candle_nn::VarMap, ctx: &mut StepContext) -> Result<()> {
        let switch = switch_step(self.vada_fraction, ctx.total_steps);
        if teacher_copied_after(ctx.step, switch, self.refresh_every) {
            self.freeze_teacher(vars)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_teacher_is_copied_at_the_switch_and_then_every_refresh() {
        let copied = |every: usize| -> Vec<usize> {
            (0..20)
                .filter(|&s| teacher_copied_after(s, 8, every))
                .collect()
        };
        // Steps 0..=7 are VADA: the copy follows step 7.
        assert_eq!(copied(0), [7]);
        assert_eq!(copied(5), [7, 12, 17]);
        assert_eq!(copied(1), (7..20).collect::<Vec<_>>());
        // vada_fraction 1 (switch never reached): never copied.
        assert!(
            !(0..20).any(|s| teacher_copied_after(s, usize::MAX, 3)),
            "VADA only"
        );
    }
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;

    fn t(v: &[f64], rows: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (rows, v.len() / rows), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_refinement_loss_matches_a_hand_computation() -> Result<()> {
        // Student rows (0, 0) and (0, ln 3): p = (½, ½), (¼, ¾); teacher rows (ln 3, 0) and
        // (0, 0): q = (¾, ¼), (½, ½).
        let ln3 = 3f64.ln();
        let z = t(&[0.0, 0.0, 0.0, ln3], 2);
        let q = t(&[ln3, 0.0, 0.0, 0.0], 2);
        let vat = Tensor::new(0.25f64, &Device::Cpu)?;
        let w = Weights {
            domain: 0.0,
            cond_ent: 0.5,
            vat: 2.0,
            teacher: 3.0,
        };
        let (ent, kl, total) = dirt_t_loss(&z, &q, &vat, &w)?;
        let h = (2f64.ln() - (0.25 * 0.25f64.ln() + 0.75 * 0.75f64.ln())) / 2.0;
        let kl1 = 0.75 * (0.75f64 / 0.5).ln() + 0.25 * (0.25f64 / 0.5).ln();
        let kl2 = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        let k = (kl1 + kl2) / 2.0;
        assert!((ent.to_scalar::<f64>()? - h).abs() < 1e-12);
        assert!((kl.to_scalar::<f64>()? - k).abs() < 1e-12);
        let want = 0.5 * h + 3.0 * k + 2.0 * 0.25;
        assert!((total.to_scalar::<f64>()? - want).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn the_refinement_loss_matches_finite_differences() -> Result<()> {
        let z = t(&[0.3, -1.2, 2.0, 0.5, 1.1, 0.0], 2);
        let q = t(&[1.0, 0.0, -0.5, 0.2, 0.2, 0.9], 2);
        let vat = Tensor::new(0.25f64, &Device::Cpu)?;
        let w = Weights {
            domain: 0.0,
            cond_ent: 0.5,
            vat: 2.0,
            teacher: 3.0,
        };
        let e = max_error(|x| Ok(dirt_t_loss(x, &q, &vat, &w)?.2), &z, 1e-6)?;
        assert!(e < 1e-8, "{e}");
        // The teacher is a constant: no gradient reaches its logits.
        let qv = candle_core::Var::from_tensor(&q)?;
        let g = dirt_t_loss(&z, qv.as_tensor(), &vat, &w)?.2.backward()?;
        assert!(g.get(qv.as_tensor()).is_none());
        Ok(())
    }

    #[test]
    fn the_phases_switch_at_the_fraction() {
        assert_eq!(switch_step(0.5, 400), 200);
        assert_eq!(switch_step(0.0, 400), 0);
        assert_eq!(switch_step(1.0, 400), usize::MAX);
        assert_eq!(switch_step(0.25, 10), 3);
    }
}
