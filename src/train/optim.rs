//! Optimisers behind one trait — the Keras-rule [`Adam`] CoDATS uses and [`Sgd`] with Nesterov
//! momentum and weight decay (the image methods' FixMatch recipe) — and learning-rate schedules.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub use super::adam::{Adam, AdamConfig};

/// One optimiser over a fixed list of variables, with state that checkpoints exactly.
pub trait Optimizer: Send {
    /// One update with the gradients in `grads` (variables without one are left alone).
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// Updates done so far.
    fn t(&self) -> u64;
    /// The learning rate the next step uses.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate of the next steps (schedules call this before each step).
    fn set_learning_rate(&mut self, lr: f64);
    /// The optimiser's state as named tensors (keys start with `prefix`).
    fn state_tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>>;
    /// Restores state saved by [`Optimizer::state_tensors`] and the update count.
    fn load_state(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>, t: u64)
        -> Result<()>;
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        Adam::step(self, grads)
    }
    fn t(&self) -> u64 {
        Adam::t(self)
    }
    fn learning_rate(&self) -> f64 {
        Adam::learning_rate(self)
    }
    fn set_learning_rate(&mut self, lr: f64) {
        Adam::set_learning_rate(self, lr)
    }
    fn state_tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        Adam::state_tensors(self, prefix)
    }
    fn load_state(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
        t: u64,
    ) -> Result<()> {
        Adam::load_state(self, prefix, tensors, t)
    }
}

/// SGD hyper-parameters (PyTorch's semantics: weight decay added to the gradient, then momentum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ (0 = plain SGD).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
}

impl SgdConfig {
    /// FixMatch's recipe (Sohn et al. 2020): lr 0.03, Nesterov momentum 0.9, weight decay 5e-4.
    pub fn fixmatch() -> Self {
        Self {
            lr: 0.03,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        }
    }
}

/// SGD with (Nesterov) momentum and weight decay, as `torch.optim.SGD`:
/// g ← ∇ + wd·p; b ← μ·b + g (b = g at the first step); d = g + μ·b (Nesterov) or b; p ← p − lr·d.
pub struct Sgd {
    cfg: SgdConfig,
    vars: Vec<(String, Var)>,
    buf: Vec<Option<Vec<f32>>>,
    t: u64,
}

impl Sgd {
    /// New optimiser (no momentum buffers yet) for `vars`.
    pub fn new(cfg: SgdConfig, vars: Vec<(String, Var)>) -> Self {
        let buf = vec![None; vars.len()];
        Self {
            cfg,
            vars,
            buf,
            t: 0,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let c = self.cfg;
        let (lr, mu, wd) = (c.lr as f32, c.momentum as f32, c.weight_decay as f32);
        for (k, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let d: Vec<f32> = g.iter().zip(&p).map(|(g, p)| g + wd * p).collect();
            let step: Vec<f32> = if mu == 0.0 {
                d
            } else {
                let b = match self.buf[k].take() {
                    None => d.clone(),
                    Some(b) => b.iter().zip(&d).map(|(b, d)| mu * b + d).collect(),
                };
                let step = if c.nesterov {
                    d.iter().zip(&b).map(|(d, b)| d + mu * b).collect()
                } else {
                    b.clone()
                };
                self.buf[k] = Some(b);
                step
            };
            for (p, s) in p.iter_mut().zip(&step) {
                *p -= lr * s;
            }
            var.set(&Tensor::from_vec(p, var.shape(), var.device())?)?;
        }
        Ok(())
    }

    fn t(&self) -> u64 {
        self.t
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn state_tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for ((name, var), b) in self.vars.iter().zip(&self.buf) {
            if let Some(b) = b {
                out.insert(
                    format!("{prefix}{name}.momentum"),
                    Tensor::from_slice(b, var.shape(), var.device())?,
                );
            }
        }
        Ok(out)
    }

    fn load_state(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
        t: u64,
    ) -> Result<()> {
        for ((name, _), b) in self.vars.iter().zip(self.buf.iter_mut()) {
            // No buffer before the first update (and none saved then).
            *b = match tensors.get(&format!("{prefix}{name}.momentum")) {
                Some(tensor) => Some(tensor.flatten_all()?.to_vec1::<f32>()?),
                None if t == 0 || self.cfg.momentum == 0.0 => None,
                None => {
                    candle_core::bail!("checkpoint lacks optimiser state {prefix}{name}.momentum")
                }
            };
        }
        self.t = t;
        Ok(())
    }
}

/// A learning-rate schedule: the rate of update `k` (0-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// base · cos(turns · π · k / total): FixMatch's decay with turns = 7/16.
    Cosine {
        /// Fraction of a half period covered by the whole run.
        turns: f64,
    },
}

impl Schedule {
    /// FixMatch's cosine decay, cos(7πk / 16K).
    pub const FIXMATCH_COSINE: Schedule = Schedule::Cosine { turns: 7.0 / 16.0 };

    /// The learning rate of update `k` of `total` for base rate `base`.
    pub fn rate(self, base: f64, k: u64, total: u64) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine { turns } => {
                base * (turns * std::f64::consts::PI * k as f64 / total.max(1) as f64).cos()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn linear_loss(var: &Var, c: &[f32]) -> Result<GradStore> {
        (var.as_tensor() * &Tensor::new(c, &Device::Cpu)?)?
            .sum_all()?
            .backward()
    }

    #[test]
    fn sgd_nesterov_with_weight_decay_matches_torch_semantics() -> Result<()> {
        // Hand-computed with lr 0.1, μ 0.9, wd 0.01, Nesterov, p0 = (1, -2), gradients
        // (3, -4) then (1, 2):
        // t=1: d = (3.01, -4.02); b = d; step = d + 0.9 b = (5.719, -7.638); p = (0.4281, -1.2362)
        // t=2: d = (1 + 0.004281, 2 - 0.012362) = (1.004281, 1.987638);
        //      b = 0.9·(3.01, -4.02) + d = (3.713281, -1.630362);
        //      step = d + 0.9 b = (4.3462339, 0.5203122); p = (-0.00652339, -1.28823122)
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let cfg = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
        };
        let mut opt = Sgd::new(cfg, vec![("w".into(), var.clone())]);
        opt.step(&linear_loss(&var, &[3.0, -4.0])?)?;
        let p = var.as_tensor().to_vec1::<f32>()?;
        assert!(
            (p[0] - 0.4281).abs() < 1e-6 && (p[1] + 1.2362).abs() < 1e-6,
            "{p:?}"
        );
        opt.step(&linear_loss(&var, &[1.0, 2.0])?)?;
        let p = var.as_tensor().to_vec1::<f32>()?;
        assert!((p[0] + 0.006_523_39).abs() < 1e-6, "{p:?}");
        assert!((p[1] + 1.288_231_22).abs() < 1e-6, "{p:?}");
        assert_eq!(opt.t(), 2);
        Ok(())
    }

    #[test]
    fn sgd_state_round_trips_exactly() -> Result<()> {
        let make = || Var::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
        let (a, b) = (make(), make());
        let cfg = SgdConfig::fixmatch();
        let mut oa = Sgd::new(cfg, vec![("w".into(), a.clone())]);
        let mut ob = Sgd::new(cfg, vec![("w".into(), b.clone())]);
        for c in [[1.0f32, 2.0, 3.0], [0.5, -1.0, 2.0]] {
            oa.step(&linear_loss(&a, &c)?)?;
            ob.step(&linear_loss(&b, &c)?)?;
        }
        // b's optimiser restarts from a's saved state; both then take the same step.
        let mut resumed = Sgd::new(cfg, vec![("w".into(), b.clone())]);
        resumed.load_state("sgd/", &oa.state_tensors("sgd/")?, oa.t())?;
        oa.step(&linear_loss(&a, &[2.0, 2.0, -1.0])?)?;
        resumed.step(&linear_loss(&b, &[2.0, 2.0, -1.0])?)?;
        assert_eq!(
            a.as_tensor().to_vec1::<f32>()?,
            b.as_tensor().to_vec1::<f32>()?
        );
        let missing = Sgd::new(cfg, vec![("w".into(), b.clone())])
            .load_state("sgd/", &HashMap::new(), 2)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("checkpoint lacks optimiser state sgd/w.momentum"));
        Ok(())
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Constant.rate(0.03, 500, 1000), 0.03);
        let s = Schedule::FIXMATCH_COSINE;
        assert_eq!(s.rate(0.03, 0, 1000), 0.03);
        // cos(7π/32) at the half-way point, cos(7π/16) at the end (FixMatch's final rate).
        let mid = 0.03 * (7.0 * std::f64::consts::PI / 32.0).cos();
        assert!((s.rate(0.03, 500, 1000) - mid).abs() < 1e-15);
        assert!((s.rate(0.03, 1000, 1000) - 0.03 * 0.195_090_322_016_128_3).abs() < 1e-12);
    }

    #[test]
    fn adam_behind_the_trait_sets_its_rate() {
        let var = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let mut opt: Box<dyn Optimizer> =
            Box::new(Adam::new(AdamConfig::keras(1e-4), vec![("w".into(), var)]));
        assert_eq!(opt.learning_rate(), 1e-4);
        opt.set_learning_rate(5e-5);
        assert_eq!(opt.learning_rate(), 5e-5);
    }
}
