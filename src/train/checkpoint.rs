//! The run directory: config.toml, splits.json, metrics.csv, checkpoints/, result.json.
//!
//! ```text
//! RUN/config.toml                  everything needed to reproduce the run
//! RUN/splits.json                  train/valid/test indices of every domain used
//! RUN/metrics.csv                  one row per evaluation
//! RUN/checkpoints/resume/          model.safetensors + optimiser.safetensors + state.json
//!                                  + manifest.json (their sha256 and config.toml's, written last)
//! RUN/checkpoints/{last,best_source,best_target}.safetensors
//! RUN/result.json                  target-test metrics for each selection rule
//! RUN/codats.lock                  the process using the run (pid, host, start time)
//! ```
//!
//! Every file is written to a temporary name, flushed to disk (fsync), renamed into place, and
//! the directory flushed, so a crash or power loss leaves either the old or the new file.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::optim::Optimizer;
use super::result::RunResult;
use super::TrainState;
use crate::config::{CheckedConfig, TrainConfig};
use crate::problem::{Problem, SavedSplits};

/// Weights at the end of training.
pub use super::selection::LAST;

/// An image run's pools (labelled, unlabelled, validation, test image indices).
pub const POOLS: &str = "pools.json";

/// Writes `bytes` to `path` via a temporary file, flushed to disk, and a rename (the directory
/// flushed after it), so readers never see half a file and a crash keeps the old or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    crate::fault::point("atomic-tmp");
    rename_synced(&tmp, path)
}

/// Flushes a file or directory to disk.
fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flushing {} to disk", path.display()))
}

/// Renames `from` (already flushed) to `to`, then flushes the directory holding `to`.
fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_path(p),
        _ => sync_path(Path::new(".")),
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Name of the checksum manifest in a resume checkpoint.
pub const MANIFEST: &str = "manifest.json";

/// The files of a resume checkpoint that its manifest covers.
const CHECKPOINT_FILES: [&str; 3] = ["model.safetensors", "optimiser.safetensors", "state.json"];

/// `checkpoints/resume/manifest.json`: the sha256 of each checkpoint file, and of config.toml
/// as written when the run was created, so a damaged checkpoint or an edited config is refused
/// instead of silently changing the run. Written after the files it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// File name in the checkpoint folder -> hex sha256 of its bytes.
    pub files: BTreeMap<String, String>,
    /// Hex sha256 of the run's config.toml.
    pub config_sha256: String,
}

/// A run's directory and the files in it.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    /// sha256 of config.toml as the run was created (recorded in every checkpoint's manifest).
    config_sha256: String,
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
        let config = toml::to_string(cfg)?;
        let dir = Self {
            root: root.to_path_buf(),
            config_sha256: sha256_hex(config.as_bytes()),
        };
        write_atomic(&dir.root.join("config.toml"), config.as_bytes())?;
        if let Some(meta) = &problem.image {
            // Which images are labelled, unlabelled, validation and test (before splits.json,
            // whose presence marks a complete creation).
            write_atomic(
                &dir.root.join(POOLS),
                serde_json::to_string_pretty(&meta.pools)?.as_bytes(),
            )?;
        }
        let splits = SavedSplits(problem.splits());
        write_atomic(
            &dir.root.join("splits.json"),
            serde_json::to_string(&splits)?.as_bytes(),
        )?;
        Ok(dir)
    }

    /// Opens an existing run directory. The config checksum is the one its checkpoint recorded,
    /// else (no checkpoint yet, or one made before manifests) that of config.toml as it is now.
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join("config.toml");
        if !path.exists() {
            bail!(
                "{} is not a codats run directory (no config.toml)",
                root.display()
            );
        }
        let mut dir = Self {
            root: root.to_path_buf(),
            config_sha256: String::new(),
        };
        dir.config_sha256 = match dir.manifest()? {
            Some(m) => m.config_sha256,
            None => sha256_hex(
                &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            ),
        };
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Path of metrics.csv.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// Reads config.toml, refusing one edited since the run was created.
    pub fn read_config(&self) -> Result<CheckedConfig> {
        self.verify_config()?;
        read_config(&self.root)
    }

    /// Fails when config.toml no longer has the checksum its run recorded: results of the run
    /// came from the original settings, so resuming or evaluating with others would mix them.
    pub fn verify_config(&self) -> Result<()> {
        let path = self.root.join("config.toml");
        let now = sha256_hex(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        );
        if now != self.config_sha256 {
            bail!(
                "config.toml was edited after the run was created: it no longer matches the checksum in checkpoints/resume/{MANIFEST}; \
                 restore the original, or train a new run with the new settings in another --out"
            );
        }
        Ok(())
    }

    /// Fails unless the problem's splits equal those saved with the run.
    pub fn check_splits(&self, problem: &Problem) -> Result<()> {
        let path = self.root.join("splits.json");
        if !path.exists() {
            bail!(
                "{} is missing: the run was stopped while it was being created; delete {} and start the run again",
                path.display(),
                self.root.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let saved: SavedSplits =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        if saved.0 != problem.splits() {
            bail!(
                "the data no longer gives the splits saved in {} (did the dataset files change?)",
                path.display()
            );
        }
        if let Some(meta) = &problem.image {
            let path = self.root.join(POOLS);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let saved: crate::problem::images::ImagePools = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            if saved != meta.pools {
                bail!(
                    "the data no longer gives the image pools saved in {} (did the dataset files change?)",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// `checkpoints/<rule>.safetensors`: the weights a selection rule (or `last`) kept.
    pub fn weights_path(&self, rule: &str) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("{rule}.safetensors"))
    }

    /// Saves the current weights (and BN statistics) as `checkpoints/{rule}.safetensors`.
    pub fn save_weights(&self, varmap: &VarMap, rule: &str) -> Result<()> {
        let path = self.weights_path(rule);
        let tmp = path.with_extension("safetensors.tmp");
        varmap
            .save(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        sync_path(&tmp)?;
        crate::fault::point("weights-tmp");
        rename_synced(&tmp, &path)
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

    /// Whether the run has a resumable checkpoint (else it stopped before its first one).
    pub fn has_checkpoint(&self) -> bool {
        self.existing_resume_dir().is_ok()
    }

    /// Writes the resumable checkpoint: weights, optimiser moments, [`TrainState`] and last
    /// their [`Manifest`], each flushed to disk, replacing the previous checkpoint only once the
    /// new one is complete.
    pub fn save_checkpoint(
        &self,
        varmap: &VarMap,
        groups: &[(String, Box<dyn Optimizer>)],
        state: &TrainState,
    ) -> Result<()> {
        let final_dir = self.resume_dir();
        let tmp = final_dir.with_extension("tmp");
        let old = final_dir.with_extension("old");
        let writing = |f: &str| format!("writing {}", tmp.join(f).display());
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        varmap
            .save(tmp.join("model.safetensors"))
            .with_context(|| writing("model.safetensors"))?;
        crate::fault::point("checkpoint-model");
        let mut tensors = HashMap::new();
        for (name, opt) in groups {
            tensors.extend(opt.state_tensors(&format!("{name}/"))?);
        }
        candle_core::safetensors::save(&tensors, tmp.join("optimiser.safetensors"))
            .with_context(|| writing("optimiser.safetensors"))?;
        crate::fault::point("checkpoint-optimiser");
        std::fs::write(tmp.join("state.json"), serde_json::to_vec(state)?)
            .with_context(|| writing("state.json"))?;
        crate::fault::point("checkpoint-state");
        self.write_manifest(&tmp)?;
        sync_path(&tmp)?;
        crate::fault::point("checkpoint-manifest");
        if final_dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old)?;
            }
            std::fs::rename(&final_dir, &old)?;
            crate::fault::point("checkpoint-swap");
        }
        rename_synced(&tmp, &final_dir)?;
        crate::fault::point("checkpoint-done");
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    }

    /// Flushes the checkpoint files in `d` and writes their manifest after them.
    fn write_manifest(&self, d: &Path) -> Result<()> {
        let mut files = BTreeMap::new();
        for f in CHECKPOINT_FILES {
            let path = d.join(f);
            sync_path(&path)?;
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(f.to_string(), sha256_hex(&bytes));
        }
        let manifest = Manifest {
            files,
            config_sha256: self.config_sha256.clone(),
        };
        let path = d.join(MANIFEST);
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        f.write_all(&serde_json::to_vec_pretty(&manifest)?)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", path.display()))
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
            "{} has no checkpoint (checkpoints/resume/ is missing)",
            self.root.display()
        )
    }

    /// The checkpoint's manifest; None without a checkpoint or for one made before manifests.
    fn manifest(&self) -> Result<Option<Manifest>> {
        let Ok(d) = self.existing_resume_dir() else {
            return Ok(None);
        };
        let path = d.join(MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        let rel = self.relative(&path);
        let text = std::fs::read(&path).with_context(|| format!("reading {rel}"))?;
        match serde_json::from_slice(&text) {
            Ok(m) => Ok(Some(m)),
            Err(e) => bail!(
                "{rel} cannot be read ({e}; the checkpoint is damaged); {}",
                self.restart_advice()
            ),
        }
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn restart_advice(&self) -> String {
        format!(
            "to start the run over, delete {} and run `codats train --resume --out {}`",
            self.resume_dir().display(),
            self.root.display()
        )
    }

    /// The checkpoint folder, after checking its files against its manifest (a checkpoint made
    /// before manifests is taken as it is).
    fn verified_resume_dir(&self) -> Result<PathBuf> {
        let d = self.existing_resume_dir()?;
        let Some(manifest) = self.manifest()? else {
            return Ok(d);
        };
        for f in CHECKPOINT_FILES {
            let path = d.join(f);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => bail!(
                    "{} cannot be read ({}; the checkpoint is damaged); {}",
                    self.relative(&path),
                    e,
                    self.restart_advice()
                ),
            };
            if manifest.files.get(f) != Some(&sha256_hex(&bytes)) {
                bail!(
                    "{} does not match its checksum (the checkpoint is damaged); {}",
                    self.relative(&path),
                    self.restart_advice()
                );
            }
        }
        Ok(d)
    }

    /// Reads the checkpointed [`TrainState`].
    pub fn read_state(&self) -> Result<TrainState> {
        parse_state(&self.verified_resume_dir()?.join("state.json"))
    }

    /// Restores weights, optimiser state and returns the [`TrainState`] of the checkpoint.
    pub fn load_checkpoint(
        &self,
        varmap: &VarMap,
        groups: &mut [(String, Box<dyn Optimizer>)],
    ) -> Result<TrainState> {
        let d = self.verified_resume_dir()?;
        let state = parse_state(&d.join("state.json"))?;
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

    /// Removes what interrupted writes left behind: `*.tmp` files and folders (and `.tmp*`
    /// names) in the run directory and in checkpoints/, and `checkpoints/resume.old/` once
    /// `resume/` is complete. Returns what it removed. Call it only
    /// while holding the run's lock.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for d in [self.root.clone(), self.root.join("checkpoints")] {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // `resume.old/` is the previous checkpoint, kept until the new `resume/` is in
                // place (only complete folders are renamed to `resume/`): then it is a leftover.
                let stale_old =
                    name == "resume.old" && self.resume_dir().join("state.json").exists();
                let leftover = stale_old
                    || (name.ends_with(".tmp") || name.starts_with(".tmp"))
                        && !name.starts_with(super::run_lock::LOCK_FILE);
                if !leftover {
                    continue;
                }
                let path = e.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
                .with_context(|| format!("removing {}", path.display()))?;
                removed.push(path);
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Writes result.json atomically.
    pub fn write_result(&self, result: &RunResult) -> Result<()> {
        let mut text = serde_json::to_string_pretty(result)?;
        text.push('\n');
        write_atomic(&self.root.join("result.json"), text.as_bytes())
    }
}

/// Reads and parses a checkpoint's `state.json`, naming the file in any error.
fn parse_state(path: &Path) -> Result<TrainState> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Reads `config.toml` of the run in `dir`, refusing one edited since the run was created
/// (what `--resume` and `codats eval` use).
pub fn read_verified_config(dir: &Path) -> Result<CheckedConfig> {
    RunDir::open(dir)?.read_config()
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
