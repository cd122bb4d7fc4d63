//! The run directory: config.toml, splits.json, metrics.csv, checkpoints/, result.json.
//!
//! ```text
//! RUN/config.toml                  everything needed to reproduce the run
//! RUN/splits.json                  train/valid/test indices of every domain used
//! RUN/metrics.csv                  one row per evaluation
//! RUN/checkpoints/resume/          model.safetensors + optimiser.safetensors + state.json
//! RUN/checkpoints/{last,best_source,best_target}.safetensors
//! RUN/result.json                  target-test metrics for each selection rule
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_nn::VarMap;

use super::optim::Optimizer;
use super::result::RunResult;
use super::TrainState;
use crate::config::{CheckedConfig, TrainConfig};
use crate::problem::{Problem, SavedSplits};

/// Weights at the end of training.
pub use super::selection::LAST;

/// Writes `bytes` to `path` via a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// A run's directory and the files in it.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates a new run directory, writing config.toml and splits.json.
    pub fn create(root: &Path, cfg: &TrainConfig, problem: &Problem) -> Result<Self> {
        if root.join("config.toml").exists() {
            bail!(
                "{} already holds a run; continue it with `codats train --resume --out {}` or choose another --out",
                root.display(),
                root.display()
            );
        }
        std::fs::create_dir_all(root.join("checkpoints"))
            .with_context(|| format!("creating run directory {}", root.display()))?;
        let dir = Self {
            root: root.to_path_buf(),
        };
        write_atomic(
            &dir.root.join("config.toml"),
            toml::to_string(cfg)?.as_bytes(),
        )?;
        let splits = SavedSplits(problem.splits());
        write_atomic(
            &dir.root.join("splits.json"),
            serde_json::to_string(&splits)?.as_bytes(),
        )?;
        Ok(dir)
    }

    /// Opens an existing run directory.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join("config.toml").exists() {
            bail!(
                "{} is not a codats run directory (no config.toml)",
                root.display()
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Path of metrics.csv.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// Reads config.toml.
    pub fn read_config(&self) -> Result<CheckedConfig> {
        read_config(&self.root)
    }

    /// Fails unless the problem's splits equal those saved with the run.
    pub fn check_splits(&self, problem: &Problem) -> Result<()> {
        let path = self.root.join("splits.json");
        let saved: SavedSplits = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        if saved.0 != problem.splits() {
            bail!(
                "the data no longer gives the splits saved in {} (did the dataset files change?)",
                path.display()
            );
        }
        Ok(())
    }

    fn weights_path(&self, rule: &str) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("{rule}.safetensors"))
    }

    /// Saves the current weights (and BN statistics) as `checkpoints/{rule}.safetensors`.
    pub fn save_weights(&self, varmap: &VarMap, rule: &str) -> Result<()> {
        let path = self.weights_path(rule);
        let tmp = path.with_extension("safetensors.tmp");
        varmap.save(&tmp)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Loads `checkpoints/{rule}.safetensors` into `varmap`.
    pub fn load_weights(&self, varmap: &mut VarMap, rule: &str) -> Result<()> {
        let path = self.weights_path(rule);
        varmap
            .load(&path)
            .with_context(|| format!("loading {}", path.display()))?;
        Ok(())
    }

    fn resume_dir(&self) -> PathBuf {
        self.root.join("checkpoints").join("resume")
    }

    /// Writes the resumable checkpoint: weights, optimiser moments and [`TrainState`], replacing
    /// the previous one only once the new one is complete.
    pub fn save_checkpoint(
        &self,
        varmap: &VarMap,
        groups: &[(String, Box<dyn Optimizer>)],
        state: &TrainState,
    ) -> Result<()> {
        let final_dir = self.resume_dir();
        let tmp = final_dir.with_extension("tmp");
        let old = final_dir.with_extension("old");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        varmap.save(tmp.join("model.safetensors"))?;
        let mut tensors = HashMap::new();
        for (name, opt) in groups {
            tensors.extend(opt.state_tensors(&format!("{name}/"))?);
        }
        candle_core::safetensors::save(&tensors, tmp.join("optimiser.safetensors"))?;
        std::fs::write(tmp.join("state.json"), serde_json::to_vec(state)?)?;
        if final_dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old)?;
            }
            std::fs::rename(&final_dir, &old)?;
        }
        std::fs::rename(&tmp, &final_dir)?;
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    }

    fn existing_resume_dir(&self) -> Result<PathBuf> {
        let d = self.resume_dir();
        if d.join("state.json").exists() {
            return Ok(d);
        }
        // Killed between the two renames: the previous complete checkpoint is still there.
        let old = d.with_extension("old");
        if old.join("state.json").exists() {
            return Ok(old);
        }
        bail!(
            "{} has no checkpoint to resume from (checkpoints/resume/ is missing)",
            self.root.display()
        )
    }

    /// Reads the checkpointed [`TrainState`].
    pub fn read_state(&self) -> Result<TrainState> {
        let d = self.existing_resume_dir()?;
        Ok(serde_json::from_slice(&std::fs::read(
            d.join("state.json"),
        )?)?)
    }

    /// Restores weights, optimiser state and returns the [`TrainState`] of the checkpoint.
    pub fn load_checkpoint(
        &self,
        varmap: &VarMap,
        groups: &mut [(String, Box<dyn Optimizer>)],
    ) -> Result<TrainState> {
        let d = self.existing_resume_dir()?;
        let state: TrainState = serde_json::from_slice(&std::fs::read(d.join("state.json"))?)?;
        let mut vm = varmap.clone();
        vm.load(d.join("model.safetensors"))?;
        let tensors = candle_core::safetensors::load(
            d.join("optimiser.safetensors"),
            &candle_core::Device::Cpu,
        )?;
        if groups.len() != state.optimiser_steps.len() {
            bail!(
                "checkpoint has {} optimiser groups, the method has {}",
                state.optimiser_steps.len(),
                groups.len()
            );
        }
        for (i, (name, opt)) in groups.iter_mut().enumerate() {
            opt.load_state(&format!("{name}/"), &tensors, state.optimiser_steps[i])?;
        }
        Ok(state)
    }

    /// Writes result.json atomically.
    pub fn write_result(&self, result: &RunResult) -> Result<()> {
        let mut text = serde_json::to_string_pretty(result)?;
        text.push('\n');
        write_atomic(&self.root.join("result.json"), text.as_bytes())
    }
}

/// Reads `config.toml` of the run in `dir` and checks it again (the file may have been
/// edited since the run was created).
pub fn read_config(dir: &Path) -> Result<CheckedConfig> {
    let path = dir.join("config.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: TrainConfig =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    cfg.check()
        .with_context(|| format!("checking {}", path.display()))
}
