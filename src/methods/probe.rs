//! A test-only method that uses every hook of the [`Method`] seam, so that the trainer's side of
//! each is tested before the image methods arrive: self-training on the target with an EMA
//! teacher. Per-sample pseudo-labels come from the epoch hook's predictions on the unlabelled
//! pool (looked up through [`super::Slice::idx`]), the teacher follows the student after every
//! step ([`Ema`]) and is what [`Method::predict`] evaluates, and the pseudo-labels, hook count
//! and a value drawn from the run's RNG in each hook are the method's resumable state.

use crate::methods::{Task, Views};
use candle_core::{Device, Result, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::ema::Ema;
use super::{
    concat, Batch, DataNeeds, EpochHook, Every, Method, MethodInfo, MethodKind, MethodSetup,
    ParamGroup, Pool, PoolView, StepContext, StepOutput, TargetUse,
};
use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::nn::CodatsModel;

/// Updates between two relabellings.
pub const RELABEL_EVERY: usize = 7;

pub const PROBE: MethodInfo = MethodInfo {
    name: "probe",
    aliases: &[],
    label: "Probe",
    help: "test only: self-training with an EMA teacher, exercising every trainer hook",
    color: (0, 0, 0),
    task: Task::Adaptation,
    needs: DataNeeds {
        sources: true,
        target: TargetUse::Unlabelled,
        views: Views::NONE,
    },
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let cfg = setup.model_config(None);
    Ok(Box::new(Probe {
        kind,
        student: CodatsModel::new(cfg, vb.pp("student"))?,
        teacher: CodatsModel::new(cfg, vb.pp("teacher"))?,
        ema: Ema::new(0.9, "student.", "teacher."),
        state: ProbeState::default(),
    }))
}

/// The probe's resumable state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeState {
    /// Pseudo-label of every window of the unlabelled pool (empty before the first hook).
    pub pseudo: Vec<u32>,
    /// Epoch hooks run so far.
    pub epochs: usize,
    /// Updates seen by `after_step`.
    pub updates: usize,
    /// The latest value drawn from the run's RNG in a hook.
    pub draw: u64,
}

struct Probe {
    kind: MethodKind,
    student: CodatsModel,
    teacher: CodatsModel,
    ema: Ema,
    state: ProbeState,
}

impl Method for Probe {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss", "pseudo_loss"]
    }

    fn step(&mut self, batch: &Batch, _ctx: &mut StepContext) -> Result<StepOutput> {
        let sources: Vec<_> = batch.sources.iter().collect();
        let (x, y) = concat(&sources)?;
        let y = y.ok_or_else(|| candle_core::Error::Msg("unlabelled source".into()))?;
        let task = cross_entropy(
            &self
                .student
                .task_logits(&self.student.features(&x, true, None)?)?,
            &y,
        )?;
        let target = batch
            .target
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("probe needs the target".into()))?;
        let pseudo = target
            .idx
            .iter()
            .map(|&i| self.state.pseudo.get(i).copied())
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| candle_core::Error::Msg("probe: no pseudo-label yet".into()))?;
        let n = pseudo.len();
        let logits = self
            .student
            .task_logits(&self.student.features(&target.x, true, None)?)?;
        let pseudo_loss = cross_entropy(&logits, &Tensor::from_vec(pseudo, n, &Device::Cpu)?)?;
        let loss = (&task + (&pseudo_loss * 0.5)?)?;
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", task.to_scalar::<f32>()?),
                ("pseudo_loss", pseudo_loss.to_scalar::<f32>()?),
            ],
            loss,
            target_logits: None,
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.teacher.predict(x)
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("student", "student.")]
    }

    fn after_step(&mut self, vars: &VarMap, _ctx: &mut StepContext) -> Result<()> {
        if self.state.updates == 0 {
            self.ema.copy(vars)?;
        } else {
            self.ema.update(vars)?;
        }
        self.state.updates += 1;
        Ok(())
    }

    fn epoch_hook(&self) -> Option<EpochHook> {
        Some(EpochHook {
            pool: Pool::Unlabelled,
            every: Every::Updates(RELABEL_EVERY),
            logits: true,
        })
    }

    fn on_epoch(&mut self, pool: &PoolView, ctx: &mut StepContext) -> Result<()> {
        use rand::Rng;
        self.state.pseudo = pool.logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        self.state.epochs += 1;
        self.state.draw = ctx.rng.random::<u64>();
        Ok(())
    }

    fn state(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.state).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state =
            serde_json::from_value(state).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(())
    }
}
