//! Adam with the Keras update rule and defaults (β₁ 0.9, β₂ 0.999, ε 1e-7), with state that
//! checkpoints exactly (first/second moments and step count).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use rayon::prelude::*;

use crate::nn::fast::with_f32;

/// Parameters per parallel work item in [`Adam::step`].
const CHUNK: usize = 1 << 14;

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// ε added to √v̂ (Keras' "epsilon hat").
    pub eps: f64,
    /// L2 weight decay added to the gradient (PyTorch `Adam(weight_decay=…)`); 0 = Keras.
    pub weight_decay: f64,
}

impl AdamConfig {
    /// Keras defaults with learning rate `lr`.
    pub fn keras(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        }
    }
}

/// Adam over a named list of variables.
pub struct Adam {
    cfg: AdamConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: u64,
}

impl Adam {
    /// New optimiser state (zero moments) for `vars`.
    pub fn new(cfg: AdamConfig, vars: Vec<(String, Var)>) -> Self {
        let m = vars
            .iter()
            .map(|(_, v)| vec![0.0; v.elem_count()])
            .collect::<Vec<_>>();
        let v = m.clone();
        Self {
            cfg,
            vars,
            m,
            v,
            t: 0,
        }
    }

    /// Steps taken so far.
    pub fn t(&self) -> u64 {
        self.t
    }

    /// One update with the gradients in `grads` (variables without a gradient are left alone,
    /// but the step counter advances as in Keras).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let t = self.t as f64;
        let lr_t = (self.cfg.lr * (1.0 - self.cfg.beta2.powf(t)).sqrt()
            / (1.0 - self.cfg.beta1.powf(t))) as f32;
        let (b1, b2, eps, wd) = (
            self.cfg.beta1 as f32,
            self.cfg.beta2 as f32,
            self.cfg.eps as f32,
            self.cfg.weight_decay as f32,
        );
        for (k, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let (m, v) = (&mut self.m[k], &mut self.v[k]);
            // Elementwise, so the parallel chunks give the same result as one loop.
            let g = g.contiguous()?;
            let p = var.as_tensor().contiguous()?;
            let new = with_f32(&g, |g| {
                with_f32(&p, |p| {
                    let mut new = vec![0.0f32; p.len()];
                    new.par_chunks_mut(CHUNK)
                        .zip(m.par_chunks_mut(CHUNK))
                        .zip(v.par_chunks_mut(CHUNK))
                        .zip(g.par_chunks(CHUNK).zip(p.par_chunks(CHUNK)))
                        .for_each(|(((new, m), v), (g, p))| {
                            for i in 0..new.len() {
                                let g = if wd == 0.0 { g[i] } else { g[i] + wd * p[i] };
                                m[i] = b1 * m[i] + (1.0 - b1) * g;
                                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                                new[i] = p[i] - lr_t * m[i] / (v[i].sqrt() + eps);
                            }
                        });
                    new
                })
            })??;
            var.set(&Tensor::from_vec(new, var.shape(), var.device())?)?;
        }
        Ok(())
    }

    /// The learning rate of the next steps.
    pub fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// The moments as named tensors (`{prefix}{var}.m`, `.v`) for a safetensors checkpoint.
    pub fn state_tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (k, (name, var)) in self.vars.iter().enumerate() {
            out.insert(
                format!("{prefix}{name}.m"),
                Tensor::from_slice(&self.m[k], var.shape(), var.device())?,
            );
            out.insert(
                format!("{prefix}{name}.v"),
                Tensor::from_slice(&self.v[k], var.shape(), var.device())?,
            );
        }
        Ok(out)
    }

    /// Restores moments saved by [`Adam::state_tensors`] and the step count.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
        t: u64,
    ) -> Result<()> {
        for (k, (name, _)) in self.vars.iter().enumerate() {
            for (suffix, dst) in [("m", &mut self.m[k]), ("v", &mut self.v[k])] {
                let key = format!("{prefix}{name}.{suffix}");
                let tensor = tensors.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("checkpoint lacks optimiser state {key}"))
                })?;
                *dst = tensor.flatten_all()?.to_vec1::<f32>()?;
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn first_adam_step_moves_by_lr_in_the_gradient_sign() -> Result<()> {
        // With bias correction, Adam's first step is lr * g / (|g| + eps') ≈ lr * sign(g).
        let var = Var::new(&[1.0f32, -2.0, 0.5], &Device::Cpu)?;
        let mut opt = Adam::new(AdamConfig::keras(0.1), vec![("w".into(), var.clone())]);
        let loss =
            (var.as_tensor() * &Tensor::new(&[3.0f32, -4.0, 0.0], &Device::Cpu)?)?.sum_all()?;
        opt.step(&loss.backward()?)?;
        let p = var.as_tensor().to_vec1::<f32>()?;
        assert!((p[0] - 0.9).abs() < 1e-5, "{p:?}");
        assert!((p[1] - -1.9).abs() < 1e-5, "{p:?}");
        assert_eq!(p[2], 0.5);
        Ok(())
    }

    #[test]
    fn later_adam_steps_follow_the_keras_rule() -> Result<()> {
        // Three steps with changing gradients; expected values from the Keras rule in f64
        // (Python: lr_t = lr·sqrt(1−β₂ᵗ)/(1−β₁ᵗ), m, v updated, p −= lr_t·m/(sqrt(v)+ε)):
        // t=2: (0.8128937974822429, -1.873366393931236); t=3: (0.7563739572073834, -1.8563793383969625).
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let mut opt = Adam::new(AdamConfig::keras(0.1), vec![("w".into(), var.clone())]);
        let want = [
            [0.900_000_105_409_144_2, -1.900_000_079_056_879],
            [0.812_893_797_482_242_9, -1.873_366_393_931_236],
            [0.756_373_957_207_383_4, -1.856_379_338_396_962_5],
        ];
        for (c, w) in [[3.0f32, -4.0], [1.0, 2.0], [-0.5, 0.25]].iter().zip(want) {
            let loss = (var.as_tensor() * &Tensor::new(c, &Device::Cpu)?)?.sum_all()?;
            opt.step(&loss.backward()?)?;
            let p = var.as_tensor().to_vec1::<f32>()?;
            for k in 0..2 {
                assert!(
                    (p[k] as f64 - w[k]).abs() < 2e-6,
                    "t={}: {p:?} vs {w:?}",
                    opt.t()
                );
            }
        }
        assert_eq!(opt.t(), 3);
        Ok(())
    }
}
