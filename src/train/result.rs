//! result.json: what a run achieved, per selection rule (written by the trainer and `codats
//! eval`, read by sweeps and reports).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::Classification;

/// Test metrics of the weights chosen by one selection rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    /// Step of the chosen weights, numbered as metrics.csv numbers them (the reference's step
    /// index: 0 = after the first update; runs with conventions 1: the update count).
    pub step: usize,
    /// Target-test accuracy, macro-F1, confusion matrix.
    pub target_test: Classification,
    /// Accuracy on all sources' test windows (0 when there are no sources).
    pub source_test_accuracy: f64,
    /// Source-validation accuracy of these weights.
    pub source_valid_accuracy: f64,
    /// Target-validation accuracy of these weights.
    pub target_valid_accuracy: f64,
    /// A clustering method's ([`crate::methods::Method::clusters`]) scores on the target test
    /// set (the held-out test images): Hungarian and majority accuracy, NMI, ARI. Its
    /// `target_test` is then of the clusters mapped onto the classes (Hungarian when K ≤
    /// classes, else majority) and its validation accuracies are Hungarian accuracies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clustering: Option<crate::eval::cluster::ClusterScores>,
}

/// result.json: what a run achieved, per selection rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Dataset name.
    pub dataset: String,
    /// Method name.
    pub method: String,
    /// Source domain ids.
    pub sources: Vec<u32>,
    /// Target domain id.
    pub target: u32,
    /// Seed.
    pub seed: u64,
    /// Steps trained (the configured `steps`; the run did `steps + 1` updates, as the reference).
    pub steps: usize,
    /// Class names (order of the confusion matrices).
    pub classes: Vec<String>,
    /// `last`, `best_source` (source validation) and `best_target` (oracle target validation).
    pub selection: BTreeMap<String, RuleResult>,
    /// The labelled target training windows (positions in the target domain) the `few_shot`
    /// rule scored on (`--few-shot`); absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot_windows: Option<Vec<usize>>,
    /// For an image run: its labels per class and which weights were evaluated. The "target"
    /// of `selection` is then the held-out test set and the sources the labelled pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageRunInfo>,
}

/// What an image run's result.json adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRunInfo {
    /// Labelled images per class.
    pub labels_per_class: usize,
    /// The network.
    pub backbone: String,
    /// Whether GCT gates were on.
    pub gct: bool,
    /// Which weights every rule evaluated: `raw` (the trained ones) or `ema` (their moving
    /// average, e.g. FixMatch's 0.999 teacher); both are in every checkpoint.
    pub weights: String,
}

impl RunResult {
    /// One line per selection rule: target-test accuracy and macro-F1, source-test accuracy.
    pub fn summary(&self) -> String {
        let r = self;
        if let Some(info) = &r.images {
            let mut lines = vec![format!(
                "{} {} ({}{}), {} labels per class, {} steps, {} weights evaluated",
                r.dataset,
                r.method,
                info.backbone,
                if info.gct { " + GCT" } else { "" },
                info.labels_per_class,
                r.steps,
                info.weights
            )];
            for (rule, res) in &r.selection {
                if let Some(c) = &res.clustering {
                    lines.push(format!(
                        "  {rule:<12} (step {:>6}): {}",
                        res.step,
                        c.summary()
                    ));
                    continue;
                }
                lines.push(format!(
                    "  {rule:<12} (step {:>6}): test accuracy {:.2}%  macro-F1 {:.3}  ({} test images)",
                    res.step,
                    100.0 * res.target_test.accuracy,
                    res.target_test.macro_f1,
                    res.target_test.n
                ));
            }
            return lines.join("\n");
        }
        let mut lines = vec![format!(
            "{} {} sources [{}] -> target {}, {} steps",
            r.dataset,
            r.method,
            r.sources
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(","),
            r.target,
            r.steps
        )];
        for (rule, res) in &r.selection {
            lines.push(format!(
                "  {rule:<12} (step {:>6}): target-test accuracy {:.2}%  macro-F1 {:.3}  source-test accuracy {:.2}%",
                res.step,
                100.0 * res.target_test.accuracy,
                res.target_test.macro_f1,
                100.0 * res.source_test_accuracy
            ));
        }
        lines.join("\n")
    }
}
