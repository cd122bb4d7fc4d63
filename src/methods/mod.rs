//! Training methods. A [`Method`] owns its model and its maths (losses for one batch); the
//! [`crate::train::Trainer`] owns the loop, optimisers, checkpoints and metrics and knows no method.

use candle_core::{Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub mod codats;
pub mod supervised;

/// The methods `codats train --method` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    /// Source-only lower bound: train on the labelled sources, never see the target.
    None,
    /// "Train on Target" bound: train on the target's own training labels, select on its own
    /// validation split (the reference's `none --sources=<target>`). `upper` is accepted too.
    #[value(name = "target_only", alias = "upper")]
    #[serde(alias = "upper")]
    TargetOnly,
    /// CoDATS: multi-source domain-adversarial training (DANN with the FCN).
    Codats,
    /// CoDATS-WS: CoDATS plus the DA-WS loss towards known target label proportions.
    #[value(name = "codats_ws")]
    CodatsWs,
}

impl MethodKind {
    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::None => "none",
            MethodKind::TargetOnly => "target_only",
            MethodKind::Codats => "codats",
            MethodKind::CodatsWs => "codats_ws",
        }
    }

    /// Every method, in the order tables list them.
    pub fn all() -> [MethodKind; 4] {
        [
            MethodKind::None,
            MethodKind::Codats,
            MethodKind::CodatsWs,
            MethodKind::TargetOnly,
        ]
    }

    /// Which data streams the method trains on.
    pub fn data_needs(self) -> DataNeeds {
        match self {
            MethodKind::None => DataNeeds {
                sources: true,
                target: TargetUse::None,
            },
            MethodKind::TargetOnly => DataNeeds {
                sources: false,
                target: TargetUse::Labelled,
            },
            MethodKind::Codats | MethodKind::CodatsWs => DataNeeds {
                sources: true,
                target: TargetUse::Unlabelled,
            },
        }
    }

    /// The batch division the reference recommends for this method.
    pub fn default_batch_division(self) -> crate::data::batch::BatchDivision {
        match self {
            MethodKind::CodatsWs => crate::data::batch::BatchDivision::Sources,
            _ => crate::data::batch::BatchDivision::All,
        }
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a method uses the target domain during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetUse {
    /// Not at all.
    None,
    /// Windows only (labels are never handed to the method).
    Unlabelled,
    /// Windows and labels.
    Labelled,
}

/// The data streams a method consumes each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataNeeds {
    /// Labelled source windows, one slice per source domain.
    pub sources: bool,
    /// What of the target it sees.
    pub target: TargetUse,
}

/// One labelled (or unlabelled) slice of a batch.
#[derive(Debug, Clone)]
pub struct Slice {
    /// Windows `[n, C, T]`.
    pub x: Tensor,
    /// Labels `[n]` (u32) when the method may see them.
    pub y: Option<Tensor>,
}

/// One training step's data: a slice per source domain (in source order) and the target slice.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Source slices; source i has domain label i + 1.
    pub sources: Vec<Slice>,
    /// The target slice (domain label 0), when the method uses the target.
    pub target: Option<Slice>,
}

/// What the trainer tells a method about the current step.
pub struct StepContext<'a> {
    /// 0-based step index.
    pub step: usize,
    /// Total steps of the run.
    pub total_steps: usize,
    /// The run's RNG for stochastic layers (dropout); part of the checkpointed state.
    pub rng: &'a mut ChaCha8Rng,
}

/// The loss to minimise and scalars to log.
pub struct StepOutput {
    /// Total loss; the trainer back-propagates it once and every optimiser group steps on it.
    pub loss: Tensor,
    /// Named scalars for metrics.csv and the progress bar (e.g. `task_loss`, `lambda`).
    pub scalars: Vec<(&'static str, f32)>,
}

/// A set of parameters (selected by name prefix) with its own optimiser state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamGroup {
    /// Name used in checkpoints.
    pub name: &'static str,
    /// Parameters whose name starts with this prefix ("" = all trainable parameters).
    pub prefix: &'static str,
}

/// A training algorithm (`Send`, so that a training step can run on a worker thread).
pub trait Method: Send {
    /// Which method this is.
    fn kind(&self) -> MethodKind;
    /// Names of the scalars [`Method::step`] returns, in metrics.csv column order (a scalar
    /// not listed here makes the run fail at its next evaluation instead of being dropped).
    fn scalars(&self) -> Vec<&'static str>;
    /// Computes the loss for one batch (training mode).
    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput>;
    /// Eval-mode task logits for windows `[B, C, T]`.
    fn predict(&self, x: &Tensor) -> Result<Tensor>;
    /// Optimiser groups. All step on the same gradients of [`StepOutput::loss`], in order.
    fn param_groups(&self) -> Vec<ParamGroup>;
}

/// Settings a method needs at construction.
#[derive(Debug, Clone)]
pub struct MethodSetup {
    /// Input channels.
    pub channels: usize,
    /// Classes.
    pub classes: usize,
    /// Number of source domains.
    pub n_sources: usize,
    /// Target label proportions for DA-WS.
    pub target_proportions: Option<Vec<f64>>,
    /// FCN implementation.
    pub kernels: crate::nn::Kernels,
}

/// Builds the method `kind` with its variables in `varmap` (uninitialised: the trainer seeds them).
pub fn build(kind: MethodKind, setup: &MethodSetup, varmap: &VarMap) -> Result<Box<dyn Method>> {
    let vb = VarBuilder::from_varmap(varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
    Ok(match kind {
        MethodKind::None | MethodKind::TargetOnly => {
            Box::new(supervised::Supervised::new(kind, setup, vb)?)
        }
        MethodKind::Codats | MethodKind::CodatsWs => {
            Box::new(codats::Codats::new(kind, setup, vb)?)
        }
    })
}

/// Trainable variables of `varmap` whose names start with `prefix`, sorted by name
/// (BatchNorm running statistics are state, not parameters, and are left out).
pub fn trainable_vars(varmap: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut v: Vec<(String, Var)> = data
        .iter()
        .filter(|(n, _)| {
            n.starts_with(prefix) && !n.ends_with("running_mean") && !n.ends_with("running_var")
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Concatenates slices' windows (and labels when all have them) along the batch axis.
pub fn concat(slices: &[&Slice]) -> Result<(Tensor, Option<Tensor>)> {
    let xs: Vec<&Tensor> = slices.iter().map(|s| &s.x).collect();
    let x = Tensor::cat(&xs, 0)?;
    let y = if slices.iter().all(|s| s.y.is_some()) {
        let ys: Vec<&Tensor> = slices
            .iter()
            .map(|s| s.y.as_ref().expect("checked"))
            .collect();
        Some(Tensor::cat(&ys, 0)?)
    } else {
        None
    };
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::BatchDivision;

    #[test]
    fn default_batch_division_follows_the_reference() {
        assert_eq!(
            MethodKind::None.default_batch_division(),
            BatchDivision::All
        );
        assert_eq!(
            MethodKind::Codats.default_batch_division(),
            BatchDivision::All
        );
        assert_eq!(
            MethodKind::CodatsWs.default_batch_division(),
            BatchDivision::Sources
        );
        assert_eq!(
            MethodKind::TargetOnly.default_batch_division(),
            BatchDivision::All
        );
    }

    #[test]
    fn target_only_is_named_so_and_accepts_upper() {
        use clap::ValueEnum;
        assert_eq!(MethodKind::TargetOnly.as_str(), "target_only");
        assert_eq!(
            MethodKind::from_str("upper", false),
            Ok(MethodKind::TargetOnly)
        );
        assert_eq!(
            MethodKind::from_str("target_only", false),
            Ok(MethodKind::TargetOnly)
        );
        let m: MethodKind = serde_json::from_str("\"upper\"").unwrap();
        assert_eq!(m, MethodKind::TargetOnly);
    }
}
