//! `noisy_student` (Xie et al. 2020, "Self-training with Noisy Student improves ImageNet
//! classification"): a student, noised, learns from the pseudo-labels an unnoised teacher gives
//! the unlabelled pool. One run is one iteration; `codats ssl noisy-student` chains them (the
//! student of iteration k is the teacher of iteration k + 1), each an ordinary run directory.
//!
//! * **Teacher** (`codats ssl train --teacher RUN`, config.toml's `[images.teacher]`): the
//!   finished run's weights (the ones it evaluated, EMA or raw) are loaded under `teacher.*`
//!   when the run starts and never trained. Before the first update (an [`Every::Epoch`] hook
//!   on the unlabelled pool) it labels every pool image without noise: eval mode, the
//!   unaugmented image, softmax probabilities.
//! * **Selection and balancing**, as the paper: images whose largest teacher probability is
//!   below `p_threshold` (0.3) are dropped; with `balance` every class (by the teacher's
//!   argmax) is brought to ⌈kept / classes with images⌉ images, a large class keeping its most
//!   confident images, a small one repeating its images in order of confidence. The result is
//!   the multiset of pool images the student draws from, reshuffled at each epoch boundary.
//! * **Student**: the labelled and the pseudo-labelled images in one forward pass (batch norm
//!   over both), both with the noise of the paper: RandAugment (the strong view), dropout
//!   (`dropout`, 0.5) in front of the classification layer and stochastic depth (`survival`,
//!   0.8 for the last block, linear decay; residual backbones only: WRN-28-2, not the small
//!   CNN). loss = CE(labelled) + λ_u · CE(pseudo-labelled, teacher targets), the targets the
//!   teacher's probabilities (`soft` 1, the paper's choice) or their argmax (`soft` 0).
//! * **Without a teacher** (iteration 0 of the pipeline) it is the supervised teacher with the
//!   same noise: CE on the labelled images alone.
//!
//! The teacher's probabilities and the selection are the resumable state; the teacher's weights
//! are in every checkpoint. The teacher's argmax labels of the pool are its
//! [`Method::pool_labels`], so metrics.csv's `pool_nmi` scores them against the pool's hidden
//! truth (evaluation only). The student starts from the seeded initialisation, not from the
//! teacher, and is the teacher's size or larger (`--backbone`; the teacher's own network is
//! recorded with it).

use candle_core::{Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::fixmatch::LAMBDA_U;
use super::{image_setup, labelled, unlabelled, view, ImageNet, StudentTeacher, EMA_M};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::losses::ssl::soft_cross_entropy;
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, EpochHook, Every, ImageSetup, Method, MethodInfo, MethodKind, MethodSetup,
    Param, ParamGroup, Pool, PoolView, StepContext, StepOutput, TargetUse, Task, Views,
};
use crate::nn::dropout::Dropout;
use crate::nn::Mode;

/// Soft (1) or hard (0) pseudo-labels.
pub const SOFT: Param = Param {
    name: "soft",
    default: 1.0,
    min: 0.0,
    max: 1.0,
    help: "1: the teacher's probabilities as targets (the paper's); 0: their argmax",
};

/// The confidence filter.
pub const P_THRESHOLD: Param = Param {
    name: "p_threshold",
    default: 0.3,
    min: 0.0,
    max: 1.0,
    help:
        "unlabelled images whose largest teacher probability is below this are dropped (paper 0.3)",
};

/// Class balancing of the pseudo-labelled images.
pub const BALANCE: Param = Param {
    name: "balance",
    default: 1.0,
    min: 0.0,
    max: 1.0,
    help: "1: every class brought to the same count (duplicating / keeping the most confident); 0: as kept",
};

/// Dropout in front of the classification layer.
pub const DROPOUT: Param = Param {
    name: "dropout",
    default: 0.5,
    min: 0.0,
    max: 0.95,
    help: "student dropout rate on the features in front of the head (paper 0.5)",
};

/// Stochastic depth's survival probability of the last residual block.
pub const SURVIVAL: Param = Param {
    name: "survival",
    default: 0.8,
    min: 0.05,
    max: 1.0,
    help: "student stochastic depth: survival probability of the last residual block, linear decay (paper 0.8; 1 = off; residual backbones only)",
};

/// The registry entry.
pub const NOISY_STUDENT: MethodInfo = MethodInfo {
    name: "noisy_student",
    aliases: &["noisystudent"],
    label: "Noisy Student",
    help: "images: a noised student learns from an unnoised teacher's pseudo-labels (Xie et al. 2020); `codats ssl noisy-student` iterates it",
    color: (230, 159, 0),
    task: Task::Images,
    needs: DataNeeds {
        sources: true,
        target: TargetUse::Unlabelled,
        views: Views {
            labelled: &[Strength::Strong],
            unlabelled: &[Strength::Strong],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[
        SOFT,
        P_THRESHOLD,
        BALANCE,
        DROPOUT,
        SURVIVAL,
        LAMBDA_U,
        EMA_M,
    ],
    survey: Some(Survey {
        setting: Setting::SemiSupervised,
        techniques: &[Technique::CrossEntropy, Technique::PseudoLabels],
    }),
    backbone: None,
    build,
};

/// The variables the trainer loads the teacher's weights into.
pub const TEACHER_PREFIX: &str = "teacher.";

/// A one-line error.
fn msg(text: String) -> candle_core::Error {
    candle_core::Error::Msg(text)
}

fn switch(setup: &MethodSetup, p: &Param) -> Result<bool> {
    let v = setup.param(p.name)?;
    if v != 0.0 && v != 1.0 {
        return Err(msg(format!("--param {}={v}: must be 0 or 1", p.name)));
    }
    Ok(v == 1.0)
}

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let image = image_setup(setup, kind.as_str())?;
    let teacher = match image.teacher {
        None => None,
        Some(t) => {
            let net = ImageSetup {
                backbone: t.backbone,
                gct: t.gct,
                ..image
            };
            Some(ImageNet::new(
                net,
                setup.classes,
                setup.kernels,
                vb.pp("teacher"),
            )?)
        }
    };
    Ok(Box::new(NoisyStudent {
        kind,
        classes: setup.classes,
        nets: StudentTeacher::new(setup, kind.as_str(), vb)?,
        teacher,
        soft: switch(setup, &SOFT)?,
        balance: switch(setup, &BALANCE)?,
        p_threshold: setup.param(P_THRESHOLD.name)?,
        noise: (
            Dropout {
                p: setup.param(DROPOUT.name)? as f32,
            },
            setup.param(SURVIVAL.name)?,
        ),
        lambda_u: setup.param(LAMBDA_U.name)?,
        state: NoisyState::default(),
        labels: Vec::new(),
        order: None,
    }))
}

/// Noisy Student's resumable state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoisyState {
    /// The teacher's probabilities for every pool image, row-major `[pool, classes]` (empty
    /// before the first boundary or without a teacher).
    pub probabilities: Vec<f32>,
    /// The pool images the student draws from (positions, repeated when duplicated).
    pub selected: Vec<usize>,
    /// Pool images that passed the confidence filter.
    pub kept: usize,
    /// Boundaries so far.
    pub epochs: usize,
}

struct NoisyStudent {
    kind: MethodKind,
    classes: usize,
    nets: StudentTeacher,
    teacher: Option<ImageNet>,
    soft: bool,
    balance: bool,
    p_threshold: f64,
    noise: (Dropout, f64),
    lambda_u: f64,
    state: NoisyState,
    /// The teacher's argmax label of every pool image (derived from the probabilities).
    labels: Vec<u32>,
    /// The order for the epoch just begun, until the trainer takes it.
    order: Option<Vec<usize>>,
}

/// The largest probability of each row and its class (the lowest class on ties).
pub fn confidences(probabilities: &[f32], classes: usize) -> Vec<(u32, f32)> {
    probabilities
        .chunks(classes)
        .map(|row| {
            let mut best = (0u32, row[0]);
            for (c, &p) in row.iter().enumerate().skip(1) {
                if p > best.1 {
                    best = (c as u32, p);
                }
            }
            best
        })
        .collect()
}

/// Noisy Student's data selection: the pool images (positions) whose confidence is at least
/// `threshold`, and with `balance` each class (by argmax) brought to ⌈kept / non-empty
/// classes⌉ images — the most confident when it has more, its images repeated in order of
/// confidence when it has fewer. Ties in confidence keep pool order. Returns the multiset (by
/// class, then confidence) and how many images passed the filter.
pub fn select(
    confidences: &[(u32, f32)],
    classes: usize,
    threshold: f64,
    balance: bool,
) -> (Vec<usize>, usize) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &(c, p)) in confidences.iter().enumerate() {
        if p as f64 >= threshold {
            by_class[c as usize].push(i);
        }
    }
    for members in &mut by_class {
        // Stable: equal confidences keep pool order.
        members.sort_by(|&a, &b| confidences[b].1.total_cmp(&confidences[a].1));
    }
    let kept: usize = by_class.iter().map(Vec::len).sum();
    if !balance {
        return (by_class.concat(), kept);
    }
    let non_empty = by_class.iter().filter(|m| !m.is_empty()).count();
    if non_empty == 0 {
        return (Vec::new(), 0);
    }
    let per = kept.div_ceil(non_empty);
    let mut out = Vec::with_capacity(per * non_empty);
    for members in by_class.iter().filter(|m| !m.is_empty()) {
        out.extend(members.iter().cycle().take(per).copied());
    }
    (out, kept)
}

impl NoisyStudent {
    /// The teacher's targets for pool rows `idx`: probabilities, or their argmax one-hot.
    fn targets(&self, idx: &[usize]) -> Result<Tensor> {
        let k = self.classes;
        let mut t = Vec::with_capacity(idx.len() * k);
        for &i in idx {
            let row = self
                .state
                .probabilities
                .get(i * k..(i + 1) * k)
                .ok_or_else(|| msg(format!("noisy_student: pool row {i} has no teacher label")))?;
            if self.soft {
                t.extend_from_slice(row);
            } else {
                let hot = self.labels[i] as usize;
                t.extend((0..k).map(|c| if c == hot { 1.0 } else { 0.0 }));
            }
        }
        Tensor::from_vec(t, (idx.len(), k), &Device::Cpu)
    }

    /// Labels the pool with the unnoised teacher and selects the student's images.
    fn label_pool(&mut self, x: &Tensor) -> Result<()> {
        let net = self.teacher.as_ref().expect("called with a teacher");
        let p = crate::train::eval::in_chunks(x, |chunk| {
            crate::losses::softmax(&net.logits(chunk, Mode::Eval)?)
        })?;
        let probabilities = p.flatten_all()?.to_vec1::<f32>()?;
        let conf = confidences(&probabilities, self.classes);
        let (selected, kept) = select(&conf, self.classes, self.p_threshold, self.balance);
        if selected.is_empty() {
            return Err(msg(format!(
                "noisy_student: no unlabelled image has a teacher confidence of at least \
                 p_threshold {} (lower it with --param p_threshold=…)",
                self.p_threshold
            )));
        }
        self.labels = conf.iter().map(|&(c, _)| c).collect();
        self.state.probabilities = probabilities;
        self.state.selected = selected;
        self.state.kept = kept;
        Ok(())
    }
}

impl Method for NoisyStudent {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["sup_loss", "unsup_loss", "kept"]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        let (lb, y) = labelled(batch)?;
        let b = lb.idx.len();
        let student = &self.nets.student;
        let (sup, unsup) = if self.teacher.is_some() {
            let ulb = unlabelled(batch)?;
            let u = ulb.idx.len();
            let x = Tensor::cat(&[view(lb, 0)?, view(ulb, 0)?], 0)?;
            let logits = student.noisy_logits(&x, Mode::Train, self.noise, ctx.rng)?;
            let sup = cross_entropy(&logits.narrow(0, 0, b)?, y)?;
            let targets = self.targets(&ulb.idx)?;
            let unsup = soft_cross_entropy(&logits.narrow(0, b, u)?, &targets)?;
            (sup, Some(unsup))
        } else {
            let logits = student.noisy_logits(view(lb, 0)?, Mode::Train, self.noise, ctx.rng)?;
            (cross_entropy(&logits, y)?, None)
        };
        let pool = self.labels.len().max(1);
        let mut scalars = vec![("sup_loss", sup.to_scalar::<f32>()?)];
        let loss = match unsup {
            Some(unsup) => {
                scalars.push(("unsup_loss", unsup.to_scalar::<f32>()?));
                (&sup + (unsup * self.lambda_u)?)?
            }
            None => {
                scalars.push(("unsup_loss", 0.0));
                sup
            }
        };
        scalars.push(("kept", self.state.kept as f32 / pool as f32));
        Ok(StepOutput {
            loss,
            scalars,
            target_logits: None,
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.nets.predict(x)
    }

    fn evaluated_weights(&self) -> &'static str {
        self.nets.evaluated_weights()
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.nets.features(x).map(Some)
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        // The teacher (`teacher.*`) is frozen: no optimiser group holds it.
        self.nets.param_groups()
    }

    fn after_init(&mut self, vars: &VarMap) -> Result<()> {
        self.nets.after_init(vars)
    }

    fn after_step(&mut self, vars: &VarMap, ctx: &mut StepContext) -> Result<()> {
        self.nets.after_step(vars, ctx.step)
    }

    fn epoch_hook(&self) -> Option<EpochHook> {
        self.teacher.as_ref().map(|_| EpochHook {
            pool: Pool::Unlabelled,
            every: Every::Epoch,
            logits: false,
        })
    }

    fn on_epoch(&mut self, pool: &PoolView, ctx: &mut StepContext) -> Result<()> {
        if self.state.probabilities.is_empty() {
            self.label_pool(pool.x)?;
        }
        let mut order = self.state.selected.clone();
        order.shuffle(ctx.rng);
        self.order = Some(order);
        self.state.epochs += 1;
        Ok(())
    }

    fn draw_order(&mut self) -> Option<Vec<usize>> {
        self.order.take()
    }

    fn pool_labels(&self) -> Option<&[u32]> {
        self.teacher.as_ref().map(|_| self.labels.as_slice())
    }

    fn state(&self) -> Result<serde_json::Value> {
        if self.teacher.is_none() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::to_value(&self.state).map_err(|e| msg(e.to_string()))
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        if state.is_null() {
            return Ok(());
        }
        self.state = serde_json::from_value(state).map_err(|e| msg(e.to_string()))?;
        self.labels = confidences(&self.state.probabilities, self.classes)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_filters_then_balances_by_confidence() {
        // Pool of 7, 3 classes. Confidences: class 0: images 0 (0.9), 1 (0.5), 2 (0.2),
        // 3 (0.7); class 1: image 4 (0.6); class 2: images 5 (0.25), 6 (0.4).
        let conf = [
            (0, 0.9),
            (0, 0.5),
            (0, 0.2),
            (0, 0.7),
            (1, 0.6),
            (2, 0.25),
            (2, 0.4),
        ];
        // Threshold 0.3 drops images 2 and 5: kept 5 (class 0: 0, 3, 1; class 1: 4; class 2: 6).
        let (plain, kept) = select(&conf, 3, 0.3, false);
        assert_eq!(kept, 5);
        assert_eq!(plain, vec![0, 3, 1, 4, 6]);
        // Balanced: ⌈5/3⌉ = 2 per class: class 0 keeps its two most confident (0, 3), class 1
        // repeats image 4, class 2 repeats image 6.
        let (balanced, kept) = select(&conf, 3, 0.3, true);
        assert_eq!(kept, 5);
        assert_eq!(balanced, vec![0, 3, 4, 4, 6, 6]);
        // A class with no image left stays empty: threshold 0.65 keeps 0, 3 (class 0) only.
        assert_eq!(select(&conf, 3, 0.65, true), (vec![0, 3], 2));
        // Nothing above the threshold: nothing selected.
        assert_eq!(select(&conf, 3, 0.95, true), (vec![], 0));
    }

    #[test]
    fn confidences_are_the_row_maxima() {
        let p = [0.2f32, 0.5, 0.3, 0.4, 0.4, 0.2];
        assert_eq!(confidences(&p, 3), vec![(1, 0.5), (0, 0.4)]);
    }
}
