//! `uic` (Chen et al. 2020, "Unsupervised Image Classification for Deep Representation
//! Learning"): deep clustering without embedding clustering, as the authors' code does it. The
//! network's own argmax predictions are the labels of the unlabelled pool:
//!
//! * epoch 0's labels are uniform random over the K classes (from the run's seeded RNG);
//! * during the training pass each sample's prediction (on its strong view, in the current
//!   batch) is written as its next label; a sample not drawn in the epoch keeps its label;
//! * before each epoch (an [`Every::Epoch`] hook on the unlabelled pool) the next labels
//!   become the labels, and every empty class gets half of the largest class (its members
//!   shuffled, the first ⌊n/2⌋ moved), one empty class at a time in class order;
//! * the epoch then draws from a class-balanced resampler (DeepCluster's `UnifLabelSampler`,
//!   which UIC's code uses: ⌊N/K⌋ + 1 draws per class, with replacement when the class has no
//!   more members than that, without otherwise; shuffled; truncated to N), handed to the
//!   trainer as the pool's draw order ([`Method::draw_order`]);
//! * the loss is plain cross-entropy of the strong view's logits against the labels.
//!
//! K is `--param k=…` (overclustering, K > classes, allowed; K ≤ the pool). It logs
//! `label_nmi`, NMI(labels_t, labels_t−1) at the latest boundary, and `empty_classes`, how many
//! it refilled there; the trainer adds `pool_nmi` (labels vs the pool's hidden truth, for
//! evaluation only) and scores the held-out test images by clustering metrics
//! ([`Method::clusters`]). The labels, the next labels and those scalars are the resumable
//! state; the resampler's order and position are the trainer's stream state.
//!
//! One step's batch is the unlabelled slice alone: `--batch-size × --uratio` images.

use candle_core::{Device, Result, Tensor, D};
use candle_nn::VarBuilder;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{image_setup, unlabelled, view, ImageNet};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::eval::cluster::nmi;
use crate::losses::cross_entropy;
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, EpochHook, Every, Method, MethodInfo, MethodKind, MethodSetup, Param,
    ParamGroup, Pool, PoolView, StepContext, StepOutput, TargetUse, Task, Views,
};
use crate::nn::Mode;

/// K: the number of classes the network clusters the pool into.
pub const K: Param = Param {
    name: "k",
    default: 10.0,
    min: 2.0,
    max: 100000.0,
    help: "number of clusters K (a whole number ≥ 2, at most the pool's images; K > classes overclusters)",
};

/// The registry entry.
pub const UIC: MethodInfo = MethodInfo {
    name: "uic",
    aliases: &[],
    label: "UIC",
    help: "images, unsupervised: own argmax predictions as labels, class-balanced resampling (Chen et al. 2020)",
    color: (86, 180, 233),
    task: Task::Images,
    needs: DataNeeds {
        sources: false,
        target: TargetUse::Unlabelled,
        views: Views {
            labelled: &[],
            unlabelled: &[Strength::Strong],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[K],
    survey: Some(Survey {
        setting: Setting::Unsupervised,
        techniques: &[
            Technique::CrossEntropy,
            Technique::PseudoLabels,
            Technique::Overclustering,
        ],
    }),
    backbone: None,
    build,
};

/// The checked number of clusters of a clustering method (`--param k`): a whole number, at
/// most the unlabelled pool's images.
pub fn checked_k(setup: &MethodSetup, image: &crate::methods::ImageSetup) -> Result<usize> {
    let k = setup.param(K.name)?;
    if k.fract() != 0.0 {
        return Err(msg(format!(
            "--param k={k}: K must be a whole number of clusters"
        )));
    }
    let k = k as usize;
    if k > image.pool_size {
        return Err(msg(format!(
            "--param k={k}: more clusters than the {} images of the unlabelled pool",
            image.pool_size
        )));
    }
    Ok(k)
}

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let image = image_setup(setup, kind.as_str())?;
    let k = checked_k(setup, &image)?;
    Ok(Box::new(Uic {
        kind,
        k,
        net: ImageNet::new(image, k, setup.kernels, vb.pp("model"))?,
        state: UicState::default(),
        order: None,
    }))
}

/// A one-line error (candle's `bail!` appends a backtrace when RUST_BACKTRACE is set).
fn msg(text: String) -> candle_core::Error {
    candle_core::Error::Msg(text)
}

/// UIC's resumable state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UicState {
    /// This epoch's label of every image of the pool (the cross-entropy targets).
    pub labels: Vec<u32>,
    /// Labels being written during the pass (each drawn image's latest prediction).
    pub next: Vec<u32>,
    /// Boundaries so far.
    pub epochs: usize,
    /// NMI(labels_t, labels_t−1) at the latest boundary (0 before the second).
    pub label_nmi: f64,
    /// Empty classes refilled at the latest boundary.
    pub empty_classes: usize,
}

struct Uic {
    kind: MethodKind,
    k: usize,
    net: ImageNet,
    state: UicState,
    /// The resampler's order for the epoch just begun, until the trainer takes it.
    order: Option<Vec<usize>>,
}

/// The current pool labels of a batch's rows (`idx`: positions in the pool) as a `u32`
/// tensor: the cross-entropy targets of a self-labelling method (`method` names it in the
/// error when a row has no label yet).
pub fn pool_targets(labels: &[u32], idx: &[usize], method: &str) -> Result<Tensor> {
    let targets = idx
        .iter()
        .map(|&i| labels.get(i).copied())
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| msg(format!("{method}: a row has no label yet")))?;
    let n = targets.len();
    Tensor::from_vec(targets, n, &Device::Cpu)
}

/// Moves half of the largest class (ties: the lowest id) into each empty class, in class
/// order: the largest class's members are shuffled and the first ⌊n/2⌋ relabelled. Returns
/// how many classes were empty.
pub fn refill_empty_classes<R: Rng>(labels: &mut [u32], k: usize, rng: &mut R) -> usize {
    let mut empty = 0;
    for e in 0..k {
        let mut counts = vec![0usize; k];
        labels.iter().for_each(|&l| counts[l as usize] += 1);
        if counts[e] > 0 {
            continue;
        }
        empty += 1;
        let mut largest = 0;
        for c in 0..k {
            if counts[c] > counts[largest] {
                largest = c;
            }
        }
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == largest)
            .collect();
        members.shuffle(rng);
        for &i in &members[..members.len() / 2] {
            labels[i] = e as u32;
        }
    }
    empty
}

/// DeepCluster's `UnifLabelSampler`: ⌊N/K'⌋ + 1 draws from each of the K' non-empty classes
/// (with replacement when the class has at most that many members), shuffled, truncated to N.
pub fn balanced_order<R: Rng>(labels: &[u32], k: usize, rng: &mut R) -> Vec<usize> {
    let n = labels.len();
    let mut members = vec![Vec::new(); k];
    for (i, &l) in labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    let non_empty = members.iter().filter(|m| !m.is_empty()).count().max(1);
    let per = n / non_empty + 1;
    let mut order = Vec::with_capacity(per * non_empty);
    for m in members.iter().filter(|m| !m.is_empty()) {
        if m.len() <= per {
            order.extend((0..per).map(|_| *m.choose(rng).expect("non-empty")));
        } else {
            order.extend(m.choose_multiple(rng, per).copied());
        }
    }
    order.shuffle(rng);
    order.truncate(n);
    order
}

impl Method for Uic {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["ce_loss", "label_nmi", "empty_classes"]
    }

    fn step(&mut self, batch: &Batch, _ctx: &mut StepContext) -> Result<StepOutput> {
        let ulb = unlabelled(batch)?;
        let targets = pool_targets(&self.state.labels, &ulb.idx, "uic")?;
        let logits = self.net.logits(view(ulb, 0)?, Mode::Train)?;
        let loss = cross_entropy(&logits, &targets)?;
        // The prediction on each sample of this batch is its next label.
        let pred = logits.detach().argmax(D::Minus1)?.to_vec1::<u32>()?;
        for (&i, p) in ulb.idx.iter().zip(pred) {
            self.state.next[i] = p;
        }
        Ok(StepOutput {
            scalars: vec![
                ("ce_loss", loss.to_scalar::<f32>()?),
                ("label_nmi", self.state.label_nmi as f32),
                ("empty_classes", self.state.empty_classes as f32),
            ],
            loss,
            target_logits: None,
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.net.logits(x, Mode::Eval)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.net.features(x, Mode::Eval).map(Some)
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("model", "model.")]
    }

    fn epoch_hook(&self) -> Option<EpochHook> {
        Some(EpochHook {
            pool: Pool::Unlabelled,
            every: Every::Epoch,
            logits: false,
        })
    }

    fn on_epoch(&mut self, pool: &PoolView, ctx: &mut StepContext) -> Result<()> {
        let n = pool.x.dim(0)?;
        let mut labels = if self.state.labels.is_empty() {
            (0..n)
                .map(|_| ctx.rng.random_range(0..self.k as u32))
                .collect()
        } else {
            let next = std::mem::take(&mut self.state.next);
            self.state.label_nmi = nmi(&next, &self.state.labels);
            next
        };
        if labels.len() != n {
            return Err(msg(format!(
                "uic: {} labels for a pool of {n} images",
                labels.len()
            )));
        }
        self.state.empty_classes = refill_empty_classes(&mut labels, self.k, ctx.rng);
        self.order = Some(balanced_order(&labels, self.k, ctx.rng));
        self.state.next = labels.clone();
        self.state.labels = labels;
        self.state.epochs += 1;
        Ok(())
    }

    fn draw_order(&mut self) -> Option<Vec<usize>> {
        self.order.take()
    }

    fn clusters(&self) -> Option<usize> {
        Some(self.k)
    }

    fn pool_labels(&self) -> Option<&[u32]> {
        Some(&self.state.labels)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn empty_classes_get_half_of_the_largest() {
        // Classes 0: 6 members, 1: 2, 2 and 3 empty (K 4). Class 2 takes ⌊6/2⌋ = 3 of class 0;
        // then class 0 has 3, 1 has 2, 2 has 3: class 3 takes ⌊3/2⌋ = 1 of class 0 (the
        // lowest id among the largest).
        let mut labels = vec![0, 0, 0, 0, 0, 0, 1, 1];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(refill_empty_classes(&mut labels, 4, &mut rng), 2);
        let count = |c| labels.iter().filter(|&&l| l == c).count();
        assert_eq!((count(0), count(1), count(2), count(3)), (2, 2, 3, 1));
        // Only class 0's members moved.
        assert_eq!(&labels[6..], &[1, 1]);
        assert_eq!(refill_empty_classes(&mut labels, 4, &mut rng), 0);
    }

    #[test]
    fn the_resampler_balances_the_classes() {
        // N 12, K 3: class 0 has 9 members, class 1 has 2, class 2 has 1. ⌊12/3⌋ + 1 = 5 draws
        // each (class 0 without replacement, 1 and 2 with), 15 shuffled, truncated to 12.
        let labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let order = balanced_order(&labels, 3, &mut rng);
        assert_eq!(order.len(), 12);
        let mut by_class = [0usize; 3];
        order
            .iter()
            .for_each(|&i| by_class[labels[i] as usize] += 1);
        // 5 of each minus the 3 truncated: every class between 2 and 5.
        assert!(
            by_class.iter().all(|&c| (2..=5).contains(&c)),
            "{by_class:?}"
        );
        // Class 0's draws are distinct images.
        let mut zero: Vec<usize> = order.iter().copied().filter(|&i| i < 9).collect();
        let len = zero.len();
        zero.sort();
        zero.dedup();
        assert_eq!(zero.len(), len);
        // Class 2's one image is drawn repeatedly.
        assert!(order.iter().filter(|&&i| i == 11).count() >= 2);
    }
}
