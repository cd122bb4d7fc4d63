//! `deepcluster` (Caron, Bojanowski, Joulin & Douze 2018, "Deep Clustering for Unsupervised
//! Learning of Visual Features"), for comparison with UIC: the labels of the unlabelled pool
//! come from clustering the network's own features, once per epoch.
//!
//! Before each epoch (an [`Every::Epoch`] hook on the unlabelled pool):
//!
//! * the backbone's eval-mode features of every pool image are reduced by PCA to `pca_dim`
//!   dimensions (256 in the paper; at most the feature width), whitened and L2-normalised
//!   ([`crate::eval::pca`]);
//! * k-means (k-means++ seeding from the run's RNG, `kmeans_iter` Lloyd iterations as the
//!   authors' faiss setting of 20) clusters them into K; a cluster an update leaves empty takes
//!   half of a non-empty one, drawn by size, with its centre perturbed — the paper's §3.3
//!   ([`crate::eval::kmeans::EmptyClusters::Split`]);
//! * the clusters become the pool's labels, the classification head is reset (weights
//!   N(0, 0.01²), bias 0, as the authors' code) and the epoch draws uniformly over the clusters
//!   (the authors' `UnifLabelSampler`, [`super::uic::balanced_order`]).
//!
//! The loss is cross-entropy of the weak view's logits against the cluster labels. Like UIC it
//! is scored by clustering metrics ([`Method::clusters`]); metrics.csv logs `ce_loss` and
//! `label_nmi` (NMI of the clusters against the previous epoch's, the paper's stability
//! curve), the trainer adds `pool_nmi`. Unlike the authors' code, the reset head keeps the
//! trainer's SGD momentum buffer of the previous epoch (the trainer owns optimiser state).
//! The labels and the NMI are the resumable state; the k-means draws come from the run's
//! checkpointed RNG.

use candle_core::{Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::uic::{balanced_order, checked_k, pool_targets, K};
use super::{image_setup, unlabelled, view, ImageNet};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::eval::cluster::nmi;
use crate::eval::kmeans::{kmeans, EmptyClusters, KmeansConfig};
use crate::eval::pca::pca_whiten_normalise;
use crate::losses::cross_entropy;
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, EpochHook, Every, Method, MethodInfo, MethodKind, MethodSetup, Param,
    ParamGroup, Pool, PoolView, StepContext, StepOutput, TargetUse, Task, Views,
};
use crate::nn::Mode;

/// PCA dimensions before k-means (the paper's 256; at most the feature width).
pub const PCA_DIM: Param = Param {
    name: "pca_dim",
    default: 256.0,
    min: 1.0,
    max: 4096.0,
    help:
        "PCA dimensions of the features before k-means (DeepCluster 256; at most the feature width)",
};

/// Lloyd iterations of each epoch's k-means (the authors' faiss `niter`).
pub const KMEANS_ITER: Param = Param {
    name: "kmeans_iter",
    default: 20.0,
    min: 1.0,
    max: 1000.0,
    help: "Lloyd iterations of each epoch's k-means (DeepCluster 20)",
};

/// The registry entry.
pub const DEEPCLUSTER: MethodInfo = MethodInfo {
    name: "deepcluster",
    aliases: &[],
    label: "DeepCluster",
    help: "images, unsupervised: k-means on PCA-whitened own features as labels each epoch, head reset (Caron et al. 2018)",
    color: (0, 114, 178),
    task: Task::Images,
    needs: DataNeeds {
        sources: false,
        target: TargetUse::Unlabelled,
        views: Views {
            labelled: &[],
            unlabelled: &[Strength::Weak],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[K, PCA_DIM, KMEANS_ITER],
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

fn whole(setup: &MethodSetup, p: &Param) -> Result<usize> {
    let v = setup.param(p.name)?;
    if v.fract() != 0.0 {
        return Err(candle_core::Error::Msg(format!(
            "--param {}={v}: must be a whole number",
            p.name
        )));
    }
    Ok(v as usize)
}

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let image = image_setup(setup, kind.as_str())?;
    let k = checked_k(setup, &image)?;
    Ok(Box::new(DeepCluster {
        kind,
        k,
        pca_dim: whole(setup, &PCA_DIM)?,
        iters: whole(setup, &KMEANS_ITER)?,
        net: ImageNet::new(image, k, setup.kernels, vb.pp("model"))?,
        head: None,
        state: DeepClusterState::default(),
        order: None,
    }))
}

/// DeepCluster's resumable state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeepClusterState {
    /// This epoch's cluster of every image of the pool.
    pub labels: Vec<u32>,
    /// Boundaries so far.
    pub epochs: usize,
    /// NMI(clusters_t, clusters_t−1) at the latest boundary (0 before the second).
    pub label_nmi: f64,
}

struct DeepCluster {
    kind: MethodKind,
    k: usize,
    pca_dim: usize,
    iters: usize,
    net: ImageNet,
    /// The head's weight and bias variables, to reset at each boundary.
    head: Option<(Var, Var)>,
    state: DeepClusterState,
    order: Option<Vec<usize>>,
}

/// A standard normal draw (Box–Muller) from `rng`.
fn normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl Method for DeepCluster {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["ce_loss", "label_nmi"]
    }

    fn step(&mut self, batch: &Batch, _ctx: &mut StepContext) -> Result<StepOutput> {
        let ulb = unlabelled(batch)?;
        let targets = pool_targets(&self.state.labels, &ulb.idx, "deepcluster")?;
        let logits = self.net.logits(view(ulb, 0)?, Mode::Train)?;
        let loss = cross_entropy(&logits, &targets)?;
        Ok(StepOutput {
            scalars: vec![
                ("ce_loss", loss.to_scalar::<f32>()?),
                ("label_nmi", self.state.label_nmi as f32),
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

    fn after_init(&mut self, vars: &VarMap) -> Result<()> {
        let data = vars.data().lock().expect("varmap lock");
        let get = |name: &str| {
            data.get(name)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("deepcluster: no variable {name}")))
        };
        self.head = Some((get("model.head.weight")?, get("model.head.bias")?));
        Ok(())
    }

    fn epoch_hook(&self) -> Option<EpochHook> {
        Some(EpochHook {
            pool: Pool::Unlabelled,
            every: Every::Epoch,
            logits: false,
        })
    }

    fn on_epoch(&mut self, pool: &PoolView, ctx: &mut StepContext) -> Result<()> {
        let (features, d) = crate::train::eval::predict_features(self, pool.x)
            .map_err(|e| candle_core::Error::Msg(format!("deepcluster: {e:#}")))?
            .ok_or_else(|| candle_core::Error::Msg("deepcluster: no features".into()))?;
        let z =
            pca_whiten_normalise(&features, d, self.pca_dim).map_err(candle_core::Error::Msg)?;
        let dims = self.pca_dim.min(d);
        let fit = kmeans(
            &z,
            dims,
            KmeansConfig {
                k: self.k,
                max_iter: self.iters,
                n_init: 1,
                seed: ctx.rng.random(),
                empty: EmptyClusters::Split,
            },
        )
        .map_err(candle_core::Error::Msg)?;
        self.state.label_nmi = if self.state.labels.is_empty() {
            0.0
        } else {
            nmi(&fit.labels, &self.state.labels)
        };
        self.order = Some(balanced_order(&fit.labels, self.k, ctx.rng));
        self.state.labels = fit.labels;
        self.state.epochs += 1;
        // A new head for the new clusters: weights N(0, 0.01²), bias 0.
        let (w, b) = self
            .head
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("deepcluster: head not bound".into()))?;
        let shape = w.dims().to_vec();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| (0.01 * normal(ctx.rng)) as f32).collect();
        w.set(&Tensor::from_vec(values, shape, &Device::Cpu)?)?;
        b.set(&b.zeros_like()?)?;
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
