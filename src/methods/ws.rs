//! DA-WS (Wilson et al. 2020) as an option of every adaptation method: the weak-supervision
//! loss KL(p_y ‖ mean softmax of the target batch) added onto any method's step.
//!
//! [`WeakSupervision`] wraps the method [`super::build`] built when its entry declares
//! `uses_proportions` (`codats_ws`) or the run asks for `--ws` (`[method] ws = true`): it runs
//! the method's step, takes the train-mode target logits the step returns in
//! [`StepOutput::target_logits`] (the same forward pass as the method's own losses), and adds
//! [`weak_supervision_kl`] to the loss, logged as `ws_loss`. Everything else is the method's.
//! A method whose step returns no target logits (no unlabelled target) cannot be wrapped: config
//! checking refuses `--ws` for it before training starts.

use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;

use super::{
    Batch, EpochHook, Method, MethodKind, MethodSetup, ParamGroup, PoolView, StepContext,
    StepOutput,
};
use crate::losses::weak_supervision_kl;

/// Purpose id of the `--ws-noise` direction's seed (`crate::seed::derive_seed`).
const SEED_WS_NOISE: u64 = 3;

/// DA-WS's proportions: `--target-proportions` if given, else the target train split's, moved
/// by `--ws-noise` when set.
pub fn ws_proportions(setup: &MethodSetup) -> Option<Vec<f64>> {
    let p = setup
        .given_proportions
        .clone()
        .or_else(|| setup.target_train_proportions.clone())?;
    Some(match setup.ws_noise {
        Some(noise) if noise > 0.0 => perturb_proportions(
            &p,
            noise,
            crate::seed::derive_seed(setup.seed, SEED_WS_NOISE),
        ),
        _ => p,
    })
}

/// Moves proportions `p` by `noise` in total (L1) along a seeded random zero-sum direction, clips
/// at zero and renormalises to sum 1 (`--ws-noise`: DA-WS given slightly wrong proportions).
pub fn perturb_proportions(p: &[f64], noise: f64, seed: u64) -> Vec<f64> {
    use rand::Rng;
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let raw: Vec<f64> = p.iter().map(|_| rng.random::<f64>() - 0.5).collect();
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    let dir: Vec<f64> = raw.iter().map(|v| v - mean).collect();
    let l1: f64 = dir.iter().map(|v| v.abs()).sum();
    if l1 == 0.0 {
        return p.to_vec();
    }
    let moved: Vec<f64> = p
        .iter()
        .zip(&dir)
        .map(|(v, d)| (v + noise * d / l1).max(0.0))
        .collect();
    let sum: f64 = moved.iter().sum();
    if sum <= 0.0 {
        return p.to_vec();
    }
    moved.iter().map(|v| v / sum).collect()
}

/// A method plus the DA-WS loss on its target logits.
pub struct WeakSupervision {
    inner: Box<dyn Method>,
    proportions: Tensor,
}

impl WeakSupervision {
    /// Wraps `inner` with the proportions of `setup` (an error when there are none).
    pub fn wrap(inner: Box<dyn Method>, setup: &MethodSetup) -> Result<Self> {
        let kind = inner.kind();
        let p = ws_proportions(setup).ok_or_else(|| {
            candle_core::Error::Msg(format!("{kind} with DA-WS needs target label proportions"))
        })?;
        let p: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        Ok(Self {
            inner,
            proportions: Tensor::from_vec(p, setup.classes, &Device::Cpu)?,
        })
    }
}

impl Method for WeakSupervision {
    fn kind(&self) -> MethodKind {
        self.inner.kind()
    }

    fn scalars(&self) -> Vec<&'static str> {
        let mut s = self.inner.scalars();
        s.push("ws_loss");
        s
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        let mut out = self.inner.step(batch, ctx)?;
        let logits = out.target_logits.as_ref().ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: DA-WS needs the step's target logits and it returned none",
                self.inner.kind()
            ))
        })?;
        let ws = weak_supervision_kl(&self.proportions, logits)?;
        out.scalars.push(("ws_loss", ws.to_scalar::<f32>()?));
        out.loss = (out.loss + ws)?;
        Ok(out)
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.inner.features(x)
    }

    fn evaluated_weights(&self) -> &'static str {
        self.inner.evaluated_weights()
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        self.inner.param_groups()
    }

    fn after_init(&mut self, vars: &VarMap) -> Result<()> {
        self.inner.after_init(vars)
    }

    fn after_step(&mut self, vars: &VarMap, ctx: &mut StepContext) -> Result<()> {
        self.inner.after_step(vars, ctx)
    }

    fn epoch_hook(&self) -> Option<EpochHook> {
        self.inner.epoch_hook()
    }

    fn on_epoch(&mut self, pool: &PoolView, ctx: &mut StepContext) -> Result<()> {
        self.inner.on_epoch(pool, ctx)
    }

    fn state(&self) -> Result<serde_json::Value> {
        self.inner.state()
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.inner.load_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    /// A method whose step returns loss 0.5, one scalar, and fixed target logits (or none).
    struct Fixed(Option<Tensor>);

    impl Method for Fixed {
        fn kind(&self) -> MethodKind {
            MethodKind::parse("dann_gs").expect("registered")
        }
        fn scalars(&self) -> Vec<&'static str> {
            vec!["task_loss"]
        }
        fn step(&mut self, _: &Batch, _: &mut StepContext) -> Result<StepOutput> {
            Ok(StepOutput {
                loss: Tensor::new(0.5f32, &Device::Cpu)?,
                scalars: vec![("task_loss", 0.5)],
                target_logits: self.0.clone(),
            })
        }
        fn predict(&self, x: &Tensor) -> Result<Tensor> {
            Ok(x.clone())
        }
    }

    fn setup(noise: Option<f64>) -> MethodSetup {
        MethodSetup {
            channels: 3,
            classes: 2,
            n_sources: 1,
            given_proportions: Some(vec![0.25, 0.75]),
            target_train_proportions: None,
            ws_noise: noise,
            ws: true,
            seed: 0,
            kernels: crate::nn::Kernels::Fast,
            gct: false,
            backbone: Default::default(),
            params: Default::default(),
            image: None,
        }
    }

    #[test]
    fn the_wrapper_adds_the_kl_to_the_proportions_onto_the_methods_loss() -> Result<()> {
        // Target rows (0, 0) and (0, ln 3): softmax (½, ½) and (¼, ¾), batch mean q = (⅜, ⅝);
        // p = (¼, ¾): KL(p ‖ q) = ¼ ln(⅔) + ¾ ln(6/5).
        let ln3 = 3f32.ln();
        let logits = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, ln3], (2, 2), &Device::Cpu)?;
        let mut m = WeakSupervision::wrap(Box::new(Fixed(Some(logits))), &setup(None))?;
        assert_eq!(m.scalars(), vec!["task_loss", "ws_loss"]);
        let batch = Batch {
            sources: Vec::new(),
            target: None,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut ctx = StepContext {
            step: 0,
            total_steps: 1,
            rng: &mut rng,
        };
        let out = m.step(&batch, &mut ctx)?;
        let kl = 0.25 * (2.0f64 / 3.0).ln() + 0.75 * (6.0f64 / 5.0).ln();
        let loss = out.loss.to_scalar::<f32>()? as f64;
        assert!((loss - (0.5 + kl)).abs() < 1e-6, "{loss} vs {}", 0.5 + kl);
        assert_eq!(out.scalars[0], ("task_loss", 0.5));
        assert_eq!(out.scalars[1].0, "ws_loss");
        assert!((out.scalars[1].1 as f64 - kl).abs() < 1e-6);
        // A step without target logits cannot take DA-WS: an error naming the method.
        let mut m = WeakSupervision::wrap(Box::new(Fixed(None)), &setup(None))?;
        let err = m.step(&batch, &mut ctx).err().expect("refused").to_string();
        assert!(
            err.contains("dann_gs: DA-WS needs the step's target logits and it returned none"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn ws_noise_moves_proportions_by_the_given_amount_and_renormalises() {
        let p = [0.1, 0.2, 0.3, 0.4];
        let q = perturb_proportions(&p, 0.1, 7);
        assert_eq!(q, perturb_proportions(&p, 0.1, 7), "deterministic");
        assert_ne!(q, perturb_proportions(&p, 0.1, 8), "seeded");
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let l1: f64 = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum();
        assert!((l1 - 0.1).abs() < 1e-9, "moved by {l1}");
        // Large noise clips at zero and still sums to one.
        let r = perturb_proportions(&p, 5.0, 7);
        assert!(r.iter().all(|v| *v >= 0.0));
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(perturb_proportions(&p, 0.0, 7), p.to_vec());
    }
}
