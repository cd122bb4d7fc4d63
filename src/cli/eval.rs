//! `codats eval`: result.json again from a finished run's checkpoints.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::set_threads;
use crate::train;

/// `codats eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory made by `codats train`.
    pub run_dir: PathBuf,
    /// Folder holding the dataset's files (default: as recorded in the run, else the usual lookup).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Runs `codats eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    // Plainly first: a missing run is named as the missing config.toml.
    train::checkpoint::read_config(&a.run_dir)?;
    let _lock = train::run_lock::RunLock::acquire(&a.run_dir)?;
    let cfg = train::checkpoint::read_verified_config(&a.run_dir)?;
    set_threads(cfg.threads, cfg.kernels);
    let problem = super::problem::load_problem(&cfg, a.data_dir.as_deref(), true, true, false)?;
    let dir = train::checkpoint::RunDir::open(&a.run_dir)?;
    dir.check_splits(&problem)?;
    let state = dir.read_state()?;
    if state.step < cfg.updates() {
        anyhow::bail!(
            "{} stopped after {} of {} updates; finish it with `codats train --resume --out {}` first",
            a.run_dir.display(),
            state.step,
            cfg.updates(),
            a.run_dir.display()
        );
    }
    let result = train::eval::evaluate_run(&cfg, &problem, &a.run_dir, &state)?;
    dir.write_result(&result)?;
    println!("{}", result.summary());
    Ok(())
}
