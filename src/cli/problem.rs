//! The problem a run's configuration describes, from its data: a time-series adaptation problem
//! (`codats train`) or an image one (`codats ssl train`, config.toml with an `[images]` table).

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::TrainConfig;
use crate::data::images::catalog::{self, ImageDataset};
use crate::data::registry::{self, DatasetName};
use crate::problem::{images::image_problem, Problem};

/// Loads the data of `cfg` (from `data_dir`, else as recorded, else the usual lookup) and builds
/// its problem; `offline` forbids downloads, `quiet` the loader's report.
pub fn load_problem(
    cfg: &TrainConfig,
    data_dir: Option<&Path>,
    offline: bool,
    quiet: bool,
    no_cache: bool,
) -> Result<Problem> {
    let data_dir = data_dir.or(cfg.data_dir.as_deref());
    if let Some(images) = &cfg.images {
        let name = ImageDataset::parse(&cfg.dataset).with_context(|| {
            format!(
                "{} is not an image dataset (image datasets: {})",
                cfg.dataset,
                ImageDataset::ALL.map(|d| d.as_str()).join(", ")
            )
        })?;
        let dir = name.dir(data_dir);
        let data = catalog::load(name, &dir, &images.folder_options())?;
        if !quiet {
            let n_train = data.train.as_ref().map_or(0, |t| t.n);
            eprintln!(
                "{}: {} training + {} test images from {}",
                name.as_str(),
                n_train,
                data.test.n,
                dir.display()
            );
            if let Some(note) = &data.note {
                eprintln!("  note: {note}");
            }
        }
        return Ok(image_problem(&data, images, cfg.seed, cfg.split_seed)?);
    }
    let name = DatasetName::parse(&cfg.dataset).map_err(anyhow::Error::msg)?;
    let dataset = registry::load_for_run(name, data_dir, offline, quiet, &cfg.data, no_cache)?;
    if let Some(p) = &cfg.method.target_proportions {
        TrainConfig::check_proportions(p, dataset.n_classes())?;
    }
    Ok(Problem::for_run(&dataset, cfg)?)
}
