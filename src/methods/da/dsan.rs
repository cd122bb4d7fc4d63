//! DSAN (Zhu et al., "Deep Subdomain Adaptation Network for Image Classification", IEEE TNNLS
//! 2020): source cross-entropy plus the local MMD (LMMD), a class-conditional MMD whose rows are
//! weighted by class membership: one-hot source labels and the target's softmax predictions
//! (detached), each column normalised to sum 1, over the classes present both among the source
//! labels and the target's predicted classes (DSAN's and AdaTime's `cal_weight`):
//!
//! LMMD = (1/|C|) Σ_c [Σ_ij w^s_ic w^s_jc k(s_i, s_j) + Σ_ij w^t_ic w^t_jc k(t_i, t_j)
//!        − 2 Σ_ij w^s_ic w^t_jc k(s_i, t_j)].
//!
//! The kernel is `mmd`'s: the mean of five Gaussians at 2^k (k = −2..2) times the median squared
//! distance. DSAN's code sums the five kernels (5× this value) around the mean distance; the
//! weight's default is AdaTime's UCI HAR weights' ratio, 1.59 / 1.76, on this kernel.

use super::Joint;
use crate::methods::Task;
use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::mmd::{median_bandwidth, multi_kernel, squared_distances};
use crate::data::batch::BatchDivision;
use crate::losses::{cross_entropy, softmax};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, StepContext, StepOutput,
};
use crate::nn::CodatsModel;

/// DSAN's registry entry.
pub const DSAN: MethodInfo = MethodInfo {
    name: "dsan",
    aliases: &["lmmd"],
    label: "DSAN",
    help: "DSAN: source cross-entropy + local (class-conditional) MMD weighted by source labels and target predictions",
    color: (153, 153, 153),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[Param {
        name: "lmmd_weight",
        default: 1.59 / 1.76,
        min: 0.0,
        max: 1e6,
        help: "weight of the local MMD (AdaTime HAR: 1.59 against a task weight of 1.76)",
    }],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Dsan {
        kind,
        model: CodatsModel::new(setup.model_config(None), vb)?,
        weight: setup.param("lmmd_weight")?,
    }))
}

/// LMMD's pair weights (W_ss `[n_s, n_s]`, W_tt `[n_t, n_t]`, W_st `[n_s, n_t]`, row-major) for
/// source labels `labels` and target class probabilities `probs` (`n_t` rows of `classes`).
/// All zero when no class is both a source label and a predicted target class.
pub fn lmmd_weights(
    labels: &[u32],
    probs: &[Vec<f64>],
    classes: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut s = vec![vec![0.0; classes]; labels.len()];
    for (row, &c) in s.iter_mut().zip(labels) {
        row[c as usize] = 1.0;
    }
    let mut t: Vec<Vec<f64>> = probs.to_vec();
    for v in [&mut s, &mut t] {
        for c in 0..classes {
            let sum: f64 = v.iter().map(|r| r[c]).sum();
            let sum = if sum == 0.0 { 100.0 } else { sum }; // as the reference: any nonzero
            v.iter_mut().for_each(|r| r[c] /= sum);
        }
    }
    let predicted: Vec<usize> = probs
        .iter()
        .map(|r| {
            (0..classes)
                .max_by(|&a, &b| r[a].total_cmp(&r[b]).then(b.cmp(&a)))
                .unwrap_or(0)
        })
        .collect();
    let common: Vec<usize> = (0..classes)
        .filter(|c| labels.iter().any(|&l| l as usize == *c) && predicted.contains(c))
        .collect();
    let outer = |a: &[Vec<f64>], b: &[Vec<f64>]| -> Vec<f64> {
        let mut w = Vec::with_capacity(a.len() * b.len());
        for ra in a {
            for rb in b {
                let dot: f64 = common.iter().map(|&c| ra[c] * rb[c]).sum();
                w.push(if common.is_empty() {
                    0.0
                } else {
                    dot / common.len() as f64
                });
            }
        }
        w
    };
    (outer(&s, &s), outer(&t, &t), outer(&s, &t))
}

/// LMMD between source features `[n_s, d]` with `labels` and target features `[n_t, d]` with
/// class probabilities `probs` `[n_t, K]` (constants), at kernel bandwidth `sigma2`.
pub fn lmmd_with_bandwidth(
    source: &Tensor,
    target: &Tensor,
    labels: &[u32],
    probs: &Tensor,
    sigma2: f64,
) -> Result<Tensor> {
    let d2 = squared_distances(&Tensor::cat(&[source, target], 0)?)?;
    lmmd_of_distances(&d2, labels, probs, sigma2)
}

fn lmmd_of_distances(d2: &Tensor, labels: &[u32], probs: &Tensor, sigma2: f64) -> Result<Tensor> {
    let (nt, classes) = probs.dims2()?;
    let ns = labels.len();
    let p = probs.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let (wss, wtt, wst) = lmmd_weights(labels, &p, classes);
    let dev = d2.device();
    let dt = d2.dtype();
    let w = |v: Vec<f64>, r: usize, c: usize| Tensor::from_vec(v, (r, c), dev)?.to_dtype(dt);
    let k = multi_kernel(d2, sigma2)?;
    let kss = k.narrow(0, 0, ns)?.narrow(1, 0, ns)?;
    let ktt = k.narrow(0, ns, nt)?.narrow(1, ns, nt)?;
    let kst = k.narrow(0, 0, ns)?.narrow(1, ns, nt)?;
    let ss = (w(wss, ns, ns)? * kss)?.sum_all()?;
    let tt = (w(wtt, nt, nt)? * ktt)?.sum_all()?;
    let st = (w(wst, ns, nt)? * kst)?.sum_all()?;
    (ss + tt)?.sub(&st.affine(2.0, 0.0)?)
}

/// LMMD with the median-heuristic bandwidth on the pooled features (detached, as in `mmd`).
pub fn lmmd(source: &Tensor, target: &Tensor, labels: &[u32], probs: &Tensor) -> Result<Tensor> {
    let d2 = squared_distances(&Tensor::cat(&[source, target], 0)?)?;
    let sigma2 = median_bandwidth(&d2)?;
    lmmd_of_distances(&d2, labels, probs, sigma2)
}

/// DSAN with the CoDATS network.
pub struct Dsan {
    kind: MethodKind,
    model: CodatsModel,
    weight: f64,
}

impl Method for Dsan {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss", "lmmd_loss"]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        // One forward pass over [sources, target], as CoDATS does (shared batch statistics).
        let Joint {
            features,
            ys,
            n_src,
            n_tgt,
            ..
        } = Joint::forward(&self.model, batch, self.kind, &mut *ctx.rng)?;
        let logits = self.model.task_logits(&features)?;
        let task_loss = cross_entropy(&logits.narrow(0, 0, n_src)?, &ys)?;
        let target_logits = logits.narrow(0, n_src, n_tgt)?;
        let probs = softmax(&target_logits)?.detach();
        let distance = lmmd(
            &features.narrow(0, 0, n_src)?,
            &features.narrow(0, n_src, n_tgt)?,
            &ys.to_vec1::<u32>()?,
            &probs,
        )?;
        let loss = (&task_loss + distance.affine(self.weight, 0.0)?)?;
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", task_loss.to_scalar::<f32>()?),
                ("lmmd_loss", distance.to_scalar::<f32>()?),
            ],
            loss,
            target_logits: Some(target_logits),
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.model.features(x, false, None).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;

    fn t(v: &[f64], rows: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (rows, v.len() / rows), &Device::Cpu).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn lmmd_weights_match_a_hand_computation() {
        // Source labels (0, 0, 1) → columns (½, ½, 0) and (0, 0, 1); target probabilities
        // (¾, ¼), (¼, ¾) already sum to 1 per class; both classes common, |C| = 2.
        let p = vec![vec![0.75, 0.25], vec![0.25, 0.75]];
        let (ss, tt, st) = lmmd_weights(&[0, 0, 1], &p, 2);
        close(&ss, &[0.125, 0.125, 0.0, 0.125, 0.125, 0.0, 0.0, 0.0, 0.5]);
        // (¾·¾ + ¼·¼) / 2 = 0.3125, (¾·¼ + ¼·¾) / 2 = 0.1875
        close(&tt, &[0.3125, 0.1875, 0.1875, 0.3125]);
        // row 0: (½·¾, ½·¼) / 2; row 2: (1·¼, 1·¾) / 2
        close(&st, &[0.1875, 0.0625, 0.1875, 0.0625, 0.125, 0.375]);
        // Class 1 is never the predicted target class: only class 0 counts, |C| = 1, and its
        // target column (0.75, 0.6) is normalised by 1.35.
        let p = vec![vec![0.75, 0.25], vec![0.6, 0.4]];
        let (ss, tt, _) = lmmd_weights(&[0, 0, 1], &p, 2);
        close(&ss, &[0.25, 0.25, 0.0, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0]);
        let (a, b) = (0.75 / 1.35, 0.6 / 1.35);
        close(&tt, &[a * a, a * b, b * a, b * b]);
        // No common class: no weight at all.
        let (ss, tt, st) = lmmd_weights(&[1, 1], &p, 2);
        assert!(ss.iter().chain(&tt).chain(&st).all(|w| *w == 0.0));
    }

    #[test]
    fn one_class_lmmd_is_plain_mmd() -> Result<()> {
        // Every source row labelled 0 and the target predicting class 0 with certainty: the
        // weights are 1/n² within and 1/(n_s n_t) across, so LMMD is mmd's MMD² — for source
        // {0, 1}, target {3} the value hand-checked in mmd.rs, 1.0102822272748302.
        let (fs, ft) = (t(&[0.0, 1.0], 2), t(&[3.0], 1));
        let probs = t(&[1.0, 0.0], 1);
        let got = lmmd(&fs, &ft, &[0, 0], &probs)?.to_scalar::<f64>()?;
        assert!((got - 1.010_282_227_274_830_2).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn lmmd_gradient_matches_finite_differences() -> Result<()> {
        let fs = t(&[1.0, 2.0, 0.5, 3.0, 0.0, -1.0, 0.0, 1.0, 2.5], 3);
        let ft = t(
            &[0.0, 0.3, 0.0, 2.0, 2.0, 1.0, 1.0, -1.0, 0.2, 1.0, 1.0, 0.7],
            4,
        );
        let labels = [0u32, 1, 1];
        let probs = t(&[0.7, 0.3, 0.2, 0.8, 0.55, 0.45, 0.1, 0.9], 4);
        // The bandwidth is a constant of the step (detached): check at a fixed one.
        let s2 = median_bandwidth(&squared_distances(&Tensor::cat(&[&fs, &ft], 0)?)?)?;
        let e = max_error(
            |x| lmmd_with_bandwidth(x, &ft, &labels, &probs, s2),
            &fs,
            1e-6,
        )?;
        assert!(e < 1e-8, "source gradient error {e}");
        let e = max_error(
            |x| lmmd_with_bandwidth(&fs, x, &labels, &probs, s2),
            &ft,
            1e-6,
        )?;
        assert!(e < 1e-8, "target gradient error {e}");
        assert!(lmmd(&fs, &ft, &labels, &probs)?.to_scalar::<f64>()? > 0.0);
        Ok(())
    }
}
