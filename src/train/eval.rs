//! Evaluation: validation accuracies during training and the final per-selection-rule result.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use candle_core::{Tensor, D};

use super::checkpoint::{RunDir, LAST};
use super::result::{RuleResult, RunResult};
use super::selection::RULES;
use super::{build_method, TrainState};
use crate::config::CheckedConfig;
use crate::methods::Method;
use crate::metrics::{accuracy, Classification};
use crate::problem::{PreparedDomain, Problem};

/// Windows per forward pass when predicting.
pub const EVAL_CHUNK: usize = 512;

/// Eval-mode logits `[n, classes]` of `method` for windows `x` `[n, C, T]`, in chunks.
pub fn predict_logits(method: &dyn Method, x: &Tensor) -> Result<Tensor> {
    Ok(in_chunks(x, |chunk| method.predict(chunk))?)
}

/// `f` over consecutive chunks of at most [`EVAL_CHUNK`] rows of `x`, the outputs concatenated
/// along rows (an evaluation pass over a whole set without holding its activations at once).
pub fn in_chunks(
    x: &Tensor,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let n = x.dim(0)?;
    let mut parts = Vec::with_capacity(n.div_ceil(EVAL_CHUNK));
    let mut start = 0;
    while start < n {
        let len = EVAL_CHUNK.min(n - start);
        parts.push(f(&x.narrow(0, start, len)?)?);
        start += len;
    }
    Tensor::cat(&parts, 0)
}

/// A labelled evaluation set held as one tensor.
pub struct EvalSet {
    /// Windows `[n, C, T]`.
    pub x: Tensor,
    /// Labels.
    pub y: Vec<u32>,
}

impl EvalSet {
    fn from_domains(problem: &Problem, parts: &[(&PreparedDomain, &[usize])]) -> Result<Self> {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (d, idx) in parts {
            let (dx, dy) = d.gather(idx, problem.window());
            x.extend(dx);
            y.extend(dy);
        }
        let n = y.len();
        Ok(Self {
            x: problem.input(x, n)?,
            y,
        })
    }

    /// Predicted classes of every window (eval mode, in chunks).
    pub fn predict(&self, method: &dyn Method) -> Result<Vec<u32>> {
        Ok(self.predict_with_loss(method)?.0)
    }

    /// Predicted classes and the mean cross-entropy of the true labels (eval mode, in chunks;
    /// 0 for an empty set).
    pub fn predict_with_loss(&self, method: &dyn Method) -> Result<(Vec<u32>, f64)> {
        let (pred, losses) = self.predict_with_losses(method)?;
        let n = losses.len();
        let nll: f64 = losses.iter().sum();
        Ok((pred, if n == 0 { 0.0 } else { nll / n as f64 }))
    }

    /// Predicted classes and each window's cross-entropy of its true label (eval mode, in
    /// chunks).
    pub fn predict_with_losses(&self, method: &dyn Method) -> Result<(Vec<u32>, Vec<f64>)> {
        let n = self.y.len();
        let mut out = Vec::with_capacity(n);
        let mut losses = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let len = EVAL_CHUNK.min(n - start);
            let logits = method.predict(&self.x.narrow(0, start, len)?)?;
            out.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
            for (row, &y) in logits.to_vec2::<f32>()?.iter().zip(&self.y[start..]) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                let lse = max
                    + row
                        .iter()
                        .map(|&v| (v as f64 - max).exp())
                        .sum::<f64>()
                        .ln();
                losses.push(lse - row[y as usize] as f64);
            }
            start += len;
        }
        Ok((out, losses))
    }

    /// Accuracy of `method` on this set (a clustering method's, [`Method::clusters`]: its
    /// Hungarian accuracy).
    pub fn accuracy(&self, method: &dyn Method) -> Result<f64> {
        Ok(self.accuracy_and_loss(method)?.0)
    }

    /// Accuracy and mean cross-entropy of `method` on this set, from one pass. A clustering
    /// method's clusters are not the classes: its accuracy is the Hungarian one
    /// ([`crate::eval::cluster::hungarian_accuracy`]) and its loss 0 (no cross-entropy of
    /// the true labels exists).
    pub fn accuracy_and_loss(&self, method: &dyn Method) -> Result<(f64, f64)> {
        if method.clusters().is_some() {
            let pred = self.predict_clusters(method)?;
            return Ok((
                crate::eval::cluster::hungarian_accuracy(&self.y, &pred),
                0.0,
            ));
        }
        let (pred, loss) = self.predict_with_loss(method)?;
        Ok((accuracy(&self.y, &pred), loss))
    }

    /// The argmax output of every window, without a loss (a clustering method's clusters).
    pub fn predict_clusters(&self, method: &dyn Method) -> Result<Vec<u32>> {
        let logits = predict_logits(method, &self.x)?;
        Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
    }
}

/// Eval-mode features `[n, d]` of `method` for windows `x`, in chunks, row-major; `None` when
/// the method exposes none ([`Method::features`]).
pub fn predict_features(method: &dyn Method, x: &Tensor) -> Result<Option<(Vec<f32>, usize)>> {
    let n = x.dim(0)?;
    let mut out = Vec::new();
    let mut d = 0;
    let mut start = 0;
    while start < n {
        let len = EVAL_CHUNK.min(n - start);
        let Some(f) = method.features(&x.narrow(0, start, len)?)? else {
            return Ok(None);
        };
        let f = f.flatten_from(1)?;
        d = f.dim(1)?;
        out.extend(f.flatten_all()?.to_vec1::<f32>()?);
        start += len;
    }
    Ok(Some((out, d)))
}

/// At most this many of the target's unlabelled training windows train the domain classifier
/// of the importance-weighted rules (evenly spaced over the split, so no RNG is drawn).
pub const MAX_DOMAIN_WINDOWS: usize = 512;

/// The validation and test sets of a problem.
pub struct EvalSets {
    /// All sources' validation windows.
    pub source_valid: EvalSet,
    /// The target's validation windows (labelled: only the oracle rule uses them).
    pub target_valid: EvalSet,
    /// All sources' test windows.
    pub source_test: EvalSet,
    /// The target's test windows.
    pub target_test: EvalSet,
    /// Up to [`MAX_DOMAIN_WINDOWS`] of the target's training windows, without labels: the
    /// target side of the importance-weighted rules' domain classifier.
    pub target_pool: Tensor,
    /// The few-shot rule's labelled target training windows (`--few-shot`), when it applies.
    pub few_shot: Option<EvalSet>,
}

impl EvalSets {
    /// Gathers the sets from the problem's splits.
    pub fn new(problem: &Problem) -> Result<Self> {
        let src = |f: fn(&PreparedDomain) -> &[usize]| -> Vec<(&PreparedDomain, &[usize])> {
            problem.sources.iter().map(|d| (d, f(d))).collect()
        };
        let t = &problem.target;
        let train = &t.split.train;
        let m = train.len().min(MAX_DOMAIN_WINDOWS);
        let picked: Vec<usize> = (0..m).map(|i| train[i * train.len() / m]).collect();
        let (pool_x, _) = t.gather(&picked, problem.window());
        Ok(Self {
            few_shot: None,
            target_pool: problem.input(pool_x, m)?,
            source_valid: EvalSet::from_domains(problem, &src(|d| &d.split.valid))?,
            target_valid: EvalSet::from_domains(problem, &[(t, &t.split.valid)])?,
            source_test: EvalSet::from_domains(problem, &src(|d| &d.split.test))?,
            target_test: EvalSet::from_domains(problem, &[(t, &t.split.test)])?,
        })
    }

    /// The sets with the few-shot rule's labelled target `windows` (positions in the target
    /// domain, [`Problem::few_shot_windows`]).
    pub fn with_few_shot(mut self, problem: &Problem, windows: &[usize]) -> Result<Self> {
        self.few_shot = Some(EvalSet::from_domains(
            problem,
            &[(&problem.target, windows)],
        )?);
        Ok(self)
    }

    /// Accuracy on the few-shot rule's windows (0 without them).
    pub fn few_shot_accuracy(&self, method: &dyn Method) -> Result<f64> {
        match &self.few_shot {
            Some(set) => set.accuracy(method),
            None => Ok(0.0),
        }
    }

    /// Source-validation accuracy (NaN-free: 0 when the method uses no sources).
    pub fn source_valid_accuracy(&self, method: &dyn Method) -> Result<f64> {
        Ok(self.source_valid_scores(method)?.0)
    }

    /// Source-validation accuracy and mean cross-entropy (both 0 without sources).
    pub fn source_valid_scores(&self, method: &dyn Method) -> Result<(f64, f64)> {
        if self.source_valid.y.is_empty() {
            return Ok((0.0, 0.0));
        }
        self.source_valid.accuracy_and_loss(method)
    }

    /// The sources' validation risk weighted towards the target, `(iwv, dev)`
    /// ([`crate::eval::importance`]): the per-window cross-entropies `losses` of the sources'
    /// validation windows ([`EvalSets::source_valid_scores_with_losses`]), weighted by density ratios from a domain classifier (seeded by `seed`) on the
    /// method's features of those windows against [`EvalSets::target_pool`]. `None` when the
    /// method exposes no features.
    pub fn weighted_risks(
        &self,
        method: &dyn Method,
        losses: &[f64],
        seed: u64,
    ) -> Result<Option<(f64, f64)>> {
        use crate::eval::importance::{density_ratios, dev_risk, iwv_risk};
        if losses.len() != self.source_valid.y.len() {
            anyhow::bail!(
                "{} window losses for {} source validation windows",
                losses.len(),
                self.source_valid.y.len()
            );
        }
        let Some((fs, d)) = predict_features(method, &self.source_valid.x)? else {
            return Ok(None);
        };
        let Some((ft, _)) = predict_features(method, &self.target_pool)? else {
            return Ok(None);
        };
        let w = density_ratios(&fs, &ft, &fs, d, seed).map_err(anyhow::Error::msg)?;
        Ok(Some((iwv_risk(&w, losses), dev_risk(&w, losses))))
    }

    /// [`EvalSets::source_valid_scores`] and each window's cross-entropy, from the same pass
    /// (the losses the importance-weighted rules weight; none for a clustering method or
    /// without sources).
    pub fn source_valid_scores_with_losses(
        &self,
        method: &dyn Method,
    ) -> Result<(f64, f64, Vec<f64>)> {
        if self.source_valid.y.is_empty() || method.clusters().is_some() {
            let (a, l) = self.source_valid_scores(method)?;
            return Ok((a, l, Vec::new()));
        }
        let (pred, losses) = self.source_valid.predict_with_losses(method)?;
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        Ok((accuracy(&self.source_valid.y, &pred), mean, losses))
    }

    /// Target-validation accuracy and mean cross-entropy.
    pub fn target_valid_scores(&self, method: &dyn Method) -> Result<(f64, f64)> {
        self.target_valid.accuracy_and_loss(method)
    }

    /// Target-validation accuracy.
    pub fn target_valid_accuracy(&self, method: &dyn Method) -> Result<f64> {
        self.target_valid.accuracy(method)
    }
}

/// Loads each selection rule's weights from the run directory and scores them.
pub fn evaluate_run(
    cfg: &CheckedConfig,
    problem: &Problem,
    dir: &Path,
    state: &TrainState,
) -> Result<RunResult> {
    let run = RunDir::open(dir)?;
    let sets = EvalSets::new(problem)?;
    let (mut varmap, method) = build_method(cfg, problem)?;
    let mut selection = BTreeMap::new();
    let label = |updates: usize| updates.checked_sub(1).map_or(0, |i| cfg.step_label(i));
    // A rule the run never offered weights to (added after the run was made) is left out.
    let rules = std::iter::once((LAST, state.step)).chain(
        RULES
            .iter()
            .filter_map(|r| state.best.get(r.name).map(|b| (r.name, b.step))),
    );
    for (rule, step) in rules {
        run.load_weights(&mut varmap, rule)?;
        let m = method.as_ref();
        let (pred, clustering) = match m.clusters() {
            // Clusters: scored by clustering metrics, and mapped onto the classes for the
            // confusion matrix (Hungarian, or majority when overclustering).
            Some(k) => {
                let clusters = sets.target_test.predict_clusters(m)?;
                let y = &sets.target_test.y;
                let scores = crate::eval::cluster::ClusterScores::new(y, &clusters, k);
                let mapped =
                    crate::eval::cluster::mapped_predictions(y, &clusters, k, problem.n_classes());
                (mapped, Some(scores))
            }
            None => (sets.target_test.predict(m)?, None),
        };
        let source_test_accuracy = if sets.source_test.y.is_empty() {
            0.0
        } else {
            sets.source_test.accuracy(m)?
        };
        selection.insert(
            rule.to_string(),
            RuleResult {
                step: label(step),
                target_test: Classification::new(&sets.target_test.y, &pred, problem.n_classes()),
                source_test_accuracy,
                source_valid_accuracy: sets.source_valid_accuracy(m)?,
                target_valid_accuracy: sets.target_valid_accuracy(m)?,
                clustering,
            },
        );
    }
    Ok(RunResult {
        dataset: cfg.dataset.clone(),
        method: cfg.method.name.to_string(),
        sources: cfg.sources.clone(),
        target: cfg.target,
        seed: cfg.seed,
        steps: label(state.step),
        classes: problem.class_names.clone(),
        selection,
        few_shot_windows: match cfg.few_shot {
            0 => None,
            k => Some(problem.few_shot_windows(k, cfg.split_seed)?),
        },
        images: cfg.images.as_ref().map(|im| super::result::ImageRunInfo {
            labels_per_class: im.labels_per_class,
            backbone: im.backbone.as_str().to_string(),
            gct: im.gct,
            weights: method.evaluated_weights().to_string(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::{Batch, MethodKind, StepContext, StepOutput};
    use candle_core::Device;

    /// Predicts the same logits for every window: (ln 3, 0) — probabilities 3/4, 1/4.
    struct Fixed;

    impl Method for Fixed {
        fn kind(&self) -> MethodKind {
            MethodKind::NONE
        }
        fn scalars(&self) -> Vec<&'static str> {
            Vec::new()
        }
        fn step(&mut self, _: &Batch, _: &mut StepContext) -> candle_core::Result<StepOutput> {
            candle_core::bail!("not trained")
        }
        fn predict(&self, x: &Tensor) -> candle_core::Result<Tensor> {
            let n = x.dim(0)?;
            let row = [3f32.ln(), 0.0];
            Tensor::from_vec(row.repeat(n), (n, 2), &Device::Cpu)
        }
    }

    #[test]
    fn validation_loss_is_the_mean_cross_entropy_of_the_true_labels() -> Result<()> {
        // Three windows labelled 0, 0, 1: -(2 ln 3/4 + ln 1/4) / 3; two of three right.
        let set = EvalSet {
            x: Tensor::zeros((3, 1, 4), candle_core::DType::F32, &Device::Cpu)?,
            y: vec![0, 0, 1],
        };
        let (acc, loss) = set.accuracy_and_loss(&Fixed)?;
        let want = -(2.0 * 0.75f64.ln() + 0.25f64.ln()) / 3.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        assert!((acc - 2.0 / 3.0).abs() < 1e-12);
        let empty = EvalSet {
            x: Tensor::zeros((0, 1, 4), candle_core::DType::F32, &Device::Cpu)?,
            y: Vec::new(),
        };
        assert_eq!(empty.predict_with_loss(&Fixed)?.1, 0.0);
        Ok(())
    }
}
