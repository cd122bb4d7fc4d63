//! CoTMix (Eldele et al., "CoTMix: Contrastive Domain Adaptation for Time-Series via Temporal
//! Mixup", IEEE TAI 2023), as AdaTime implements it, on the CoDATS network with no domain head.
//!
//! **Temporal mixup** makes two views per step. A source-dominant window is
//! λ · source + (1 − λ) · (the paired target window averaged over a sliding window of
//! `temporal_shift` steps), a target-dominant window is λ · target + (1 − λ) · (the paired
//! source window, smoothed the same way); λ is `mix_ratio`. The moving average is circular
//! (AdaTime's mean of `torch.roll` over the shifts −h, …, h − 1 with h = ⌊shift / 2⌋, so the
//! window is 2h steps). With several sources, source k's row i pairs with target row i and
//! target row i pairs with row i of source i mod k (one source: row i with row i, as AdaTime).
//!
//! loss = CE(sources) + `entropy_weight` · H(target predictions)
//! + `supcon_weight` · SupCon(source logits, source-dominant logits; source labels)
//! + `contrast_weight` · NT-Xent(target logits, target-dominant logits),
//!
//! both contrastive losses at temperature `temperature` on the classifier's logits
//! ([`crate::losses::contrastive`]). The originals are one forward pass over [sources, target],
//! as the other methods here; the mixed views a second one.
//!
//! Defaults: AdaTime's UCI HAR hyper-parameters (mix ratio 0.9, shift 14, and the weights 0.05,
//! 0.1, 0.1 against a task weight of 0.78, here relative to it), the temperature 0.2 of both its
//! losses. metrics.csv logs `entropy_loss`, `supcon_loss` and `contrast_loss`.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::Joint;
use crate::data::batch::BatchDivision;
use crate::losses::contrastive::{nt_xent, sup_con};
use crate::losses::cross_entropy;
use crate::losses::ssl::entropy;
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Param, Slice, StepContext,
    StepOutput, Task,
};
use crate::nn::CodatsModel;

/// AdaTime's UCI HAR task weight for CoTMix, the unit of the loss weights.
const ADATIME_TASK: f64 = 0.78;

/// CoTMix's registry entry.
pub const COTMIX: MethodInfo = MethodInfo {
    name: "cotmix",
    aliases: &[],
    label: "CoTMix",
    help: "CoTMix: temporal mixup of source and target, supervised (source) and NT-Xent (target) contrastive losses, target entropy",
    color: (0, 128, 128),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[
        Param {
            name: "mix_ratio",
            default: 0.9,
            min: 0.0,
            max: 1.0,
            help: "weight λ of the dominant domain in a mixed window (AdaTime HAR: 0.9)",
        },
        Param {
            name: "temporal_shift",
            default: 14.0,
            min: 2.0,
            max: 1e6,
            help: "length in steps of the moving average over the other domain, of which 2⌊shift/2⌋ are used (AdaTime HAR: 14)",
        },
        Param {
            name: "entropy_weight",
            default: 0.05 / ADATIME_TASK,
            min: 0.0,
            max: 1e6,
            help: "weight of the target prediction entropy (AdaTime HAR: 0.05 against a task weight of 0.78)",
        },
        Param {
            name: "supcon_weight",
            default: 0.1 / ADATIME_TASK,
            min: 0.0,
            max: 1e6,
            help: "weight of the supervised contrastive loss between sources and source-dominant mixes (AdaTime HAR: 0.1 against 0.78)",
        },
        Param {
            name: "contrast_weight",
            default: 0.1 / ADATIME_TASK,
            min: 0.0,
            max: 1e6,
            help: "weight of the NT-Xent loss between target and target-dominant mixes (AdaTime HAR: 0.1 against 0.78)",
        },
        Param {
            name: "temperature",
            default: 0.2,
            min: 1e-4,
            max: 1e4,
            help: "temperature of both contrastive losses (CoTMix: 0.2)",
        },
    ],
    survey: None,
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(CoTMix {
        kind,
        model: CodatsModel::new(setup.model_config(None), vb)?,
        mix_ratio: setup.param("mix_ratio")?,
        half_shift: (setup.param("temporal_shift")?.round() as usize) / 2,
        average: None,
        weights: Weights {
            entropy: setup.param("entropy_weight")?,
            supcon: setup.param("supcon_weight")?,
            contrast: setup.param("contrast_weight")?,
        },
        temperature: setup.param("temperature")?,
    }))
}

/// The auxiliary loss weights (the task loss weighs 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Target entropy.
    pub entropy: f64,
    /// Source SupCon.
    pub supcon: f64,
    /// Target NT-Xent.
    pub contrast: f64,
}

/// The `[T, T]` matrix M with x · M the circular moving average of the rows x over the 2h
/// steps t − h, …, t + h − 1: (x M)_t = (1/2h) Σ_{i=−h}^{h−1} x_{(t+i) mod T}.
pub fn moving_average_matrix(steps: usize, h: usize, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; steps * steps];
    let w = 1.0 / (2 * h) as f32;
    for t in 0..steps {
        for i in -(h as i64)..h as i64 {
            let s = (t as i64 + i).rem_euclid(steps as i64) as usize;
            m[s * steps + t] += w;
        }
    }
    Tensor::from_vec(m, (steps, steps), device)
}

/// λ · `dominant` + (1 − λ) · `other` · `average`, windows `[n, C, T]` (the same shape) and
/// `average` the `[T, T]` [`moving_average_matrix`] (of their dtype).
pub fn temporal_mix(
    dominant: &Tensor,
    other: &Tensor,
    ratio: f64,
    average: &Tensor,
) -> Result<Tensor> {
    let (n, c, steps) = other.dims3()?;
    let smooth = other
        .reshape((n * c, steps))?
        .matmul(average)?
        .reshape((n, c, steps))?;
    dominant.affine(ratio, 0.0)? + smooth.affine(1.0 - ratio, 0.0)?
}

/// The partner rows of the mixup: for each source row (sources in order), its target row; for
/// each target row, its row in the concatenated sources.
pub fn partners(source_rows: &[usize], n_target: usize) -> (Vec<u32>, Vec<u32>) {
    let for_sources = source_rows
        .iter()
        .flat_map(|&n| (0..n).map(move |i| (i % n_target) as u32))
        .collect();
    let offsets: Vec<usize> = source_rows
        .iter()
        .scan(0, |acc, &n| {
            let o = *acc;
            *acc += n;
            Some(o)
        })
        .collect();
    let for_target = (0..n_target)
        .map(|i| {
            let k = i % source_rows.len();
            (offsets[k] + i % source_rows[k]) as u32
        })
        .collect();
    (for_sources, for_target)
}

/// CoTMix on the CoDATS network.
pub struct CoTMix {
    kind: MethodKind,
    model: CodatsModel,
    mix_ratio: f64,
    /// h: the moving average spans 2h steps.
    half_shift: usize,
    /// The moving-average matrix of the window length seen (built at the first step).
    average: Option<Tensor>,
    weights: Weights,
    temperature: f64,
}

impl CoTMix {
    /// The source-dominant and target-dominant windows of the sources `xs` (rows of the
    /// `sources` slices, in order) and the target `xt`.
    fn mixes(&mut self, sources: &[Slice], xs: &Tensor, xt: &Tensor) -> Result<(Tensor, Tensor)> {
        let rows: Vec<usize> = sources.iter().map(|s| s.x.dim(0)).collect::<Result<_>>()?;
        let (for_sources, for_target) = partners(&rows, xt.dim(0)?);
        let device = xt.device();
        let ts = xt.index_select(&Tensor::new(for_sources.as_slice(), device)?, 0)?;
        let st = xs.index_select(&Tensor::new(for_target.as_slice(), device)?, 0)?;
        let steps = xt.dim(2)?;
        let average = match &self.average {
            Some(m) if m.dim(0)? == steps && m.dtype() == xt.dtype() => m.clone(),
            _ => {
                let m =
                    moving_average_matrix(steps, self.half_shift, device)?.to_dtype(xt.dtype())?;
                self.average = Some(m.clone());
                m
            }
        };
        Ok((
            temporal_mix(xs, &ts, self.mix_ratio, &average)?,
            temporal_mix(xt, &st, self.mix_ratio, &average)?,
        ))
    }
}

/// The step's loss from its parts: (total, entropy, supcon, contrast) given the task loss and
/// the logits of the originals and the mixes.
pub fn cotmix_loss(
    task_loss: &Tensor,
    (source, source_mix, labels): (&Tensor, &Tensor, &Tensor),
    (target, target_mix): (&Tensor, &Tensor),
    w: &Weights,
    temperature: f64,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let ent = entropy(target)?;
    let supcon = sup_con(source, source_mix, labels, temperature)?;
    let contrast = nt_xent(target, target_mix, temperature)?;
    let total = (((task_loss + ent.affine(w.entropy, 0.0)?)? + supcon.affine(w.supcon, 0.0)?)?
        + contrast.affine(w.contrast, 0.0)?)?;
    Ok((total, ent, supcon, contrast))
}

impl Method for CoTMix {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss", "entropy_loss", "supcon_loss", "contrast_loss"]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        let target = super::target_slice(batch, self.kind)?;
        let Joint {
            features,
            xs,
            ys,
            n_src,
            n_tgt,
        } = Joint::forward(&self.model, batch, self.kind, &mut *ctx.rng)?;
        let logits = self.model.task_logits(&features)?;
        let (ls, lt) = (logits.narrow(0, 0, n_src)?, logits.narrow(0, n_src, n_tgt)?);
        let task_loss = cross_entropy(&ls, &ys)?;
        let (src_mix, tgt_mix) = self.mixes(&batch.sources, &xs, &target.x)?;
        let mixed = self.model.task_logits(&self.model.features(
            &Tensor::cat(&[&src_mix, &tgt_mix], 0)?,
            true,
            Some(&mut *ctx.rng),
        )?)?;
        let (ls_mix, lt_mix) = (mixed.narrow(0, 0, n_src)?, mixed.narrow(0, n_src, n_tgt)?);
        let (loss, ent, supcon, contrast) = cotmix_loss(
            &task_loss,
            (&ls, &ls_mix, &ys),
            (&lt, &lt_mix),
            &self.weights,
            self.temperature,
        )?;
        let f = |t: &Tensor| t.to_dtype(DType::F32)?.to_scalar::<f32>();
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", f(&task_loss)?),
                ("entropy_loss", f(&ent)?),
                ("supcon_loss", f(&supcon)?),
                ("contrast_loss", f(&contrast)?),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;

    /// AdaTime's mixup, literally: the mean of `torch.roll(x, -i, 2)` for i in −h..h.
    fn rolled_mean(x: &[Vec<f32>], h: usize) -> Vec<Vec<f32>> {
        x.iter()
            .map(|row| {
                let steps = row.len() as i64;
                (0..steps)
                    .map(|t| {
                        (-(h as i64)..h as i64)
                            .map(|i| row[(t + i).rem_euclid(steps) as usize])
                            .sum::<f32>()
                            / (2 * h) as f32
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_mix_is_the_ratio_of_one_window_and_a_moving_average_of_the_other() -> Result<()> {
        let dev = Device::Cpu;
        // T = 4, shift 2 (h = 1): the average of steps t − 1 and t, circularly. dominant 0,
        // other (1, 2, 3, 4): averages (2.5, 1.5, 2.5, 3.5), mixed with λ = 0.75.
        let zero = Tensor::zeros((1, 1, 4), DType::F32, &dev)?;
        let other = Tensor::new(&[[[1f32, 2.0, 3.0, 4.0]]], &dev)?;
        let average = |steps: usize, h: usize| moving_average_matrix(steps, h, &dev);
        let got = temporal_mix(&zero, &other, 0.75, &average(4, 1)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let want = [2.5f32, 1.5, 2.5, 3.5].map(|v| 0.25 * v);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // AdaTime's HAR setting (shift 14, λ 0.9) on 2 windows × 3 channels × 20 steps, and a
        // window shorter than the shift (T = 5, h = 7: the average wraps more than once).
        for (steps, h) in [(20usize, 7usize), (5, 7)] {
            let n = 2 * 3 * steps;
            let d: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 23) as f32 * 0.1 - 1.0)
                .collect();
            let o: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 31) as f32 * 0.05).collect();
            let dt = Tensor::from_vec(d.clone(), (2, 3, steps), &dev)?;
            let ot = Tensor::from_vec(o.clone(), (2, 3, steps), &dev)?;
            let got = temporal_mix(&dt, &ot, 0.9, &average(steps, h)?)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let rows: Vec<Vec<f32>> = o.chunks(steps).map(|c| c.to_vec()).collect();
            let avg: Vec<f32> = rolled_mean(&rows, h).concat();
            for i in 0..n {
                let want = 0.9 * d[i] + 0.1 * avg[i];
                assert!(
                    (got[i] - want).abs() < 1e-5,
                    "T {steps} entry {i}: {} vs {want}",
                    got[i]
                );
            }
        }
        Ok(())
    }

    #[test]
    fn each_row_pairs_with_a_row_of_the_other_domain() {
        // One source: row i with row i both ways, as AdaTime.
        assert_eq!(partners(&[4], 4), (vec![0, 1, 2, 3], vec![0, 1, 2, 3]));
        // Two sources of 3 rows, a target of 3: source rows pair with target rows 0..3 each;
        // target row i takes row i of source i mod 2 (rows 0, 4, 2 of the concatenation).
        assert_eq!(
            partners(&[3, 3], 3),
            (vec![0, 1, 2, 0, 1, 2], vec![0, 4, 2])
        );
        // Unequal sizes wrap.
        assert_eq!(partners(&[2], 3), (vec![0, 1], vec![0, 1, 0]));
    }

    #[test]
    fn the_loss_weighs_its_parts_and_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let t = |v: &[f64]| Tensor::from_vec(v.to_vec(), (2, 3), &dev).unwrap();
        let (s, sm) = (
            t(&[0.3, -1.2, 2.0, 0.5, 1.1, 0.0]),
            t(&[0.1, -1.0, 1.5, 0.7, 0.9, 0.2]),
        );
        let (g, gm) = (
            t(&[-0.7, 0.9, -2.0, 1.5, 0.2, -0.4]),
            t(&[-0.5, 1.0, -1.0, 1.2, 0.0, 0.1]),
        );
        let y = Tensor::new(&[2u32, 2], &dev)?;
        let task = Tensor::new(0.5f64, &dev)?;
        let w = Weights {
            entropy: 0.5,
            supcon: 2.0,
            contrast: 3.0,
        };
        let (total, ent, supcon, contrast) = cotmix_loss(&task, (&s, &sm, &y), (&g, &gm), &w, 0.2)?;
        let v = |x: &Tensor| x.to_scalar::<f64>().unwrap();
        assert!((v(&ent) - v(&entropy(&g)?)).abs() < 1e-12);
        assert!((v(&supcon) - v(&sup_con(&s, &sm, &y, 0.2)?)).abs() < 1e-12);
        assert!((v(&contrast) - v(&nt_xent(&g, &gm, 0.2)?)).abs() < 1e-12);
        let want = 0.5 + 0.5 * v(&ent) + 2.0 * v(&supcon) + 3.0 * v(&contrast);
        assert!((v(&total) - want).abs() < 1e-12);
        // The gradient reaches every set of logits.
        for (name, e) in [
            (
                "source",
                max_error(
                    |x| Ok(cotmix_loss(&task, (x, &sm, &y), (&g, &gm), &w, 0.2)?.0),
                    &s,
                    1e-6,
                )?,
            ),
            (
                "source mix",
                max_error(
                    |x| Ok(cotmix_loss(&task, (&s, x, &y), (&g, &gm), &w, 0.2)?.0),
                    &sm,
                    1e-6,
                )?,
            ),
            (
                "target",
                max_error(
                    |x| Ok(cotmix_loss(&task, (&s, &sm, &y), (x, &gm), &w, 0.2)?.0),
                    &g,
                    1e-6,
                )?,
            ),
            (
                "target mix",
                max_error(
                    |x| Ok(cotmix_loss(&task, (&s, &sm, &y), (&g, x), &w, 0.2)?.0),
                    &gm,
                    1e-6,
                )?,
            ),
        ] {
            assert!(e < 1e-7, "{name}: {e}");
        }
        Ok(())
    }
}
