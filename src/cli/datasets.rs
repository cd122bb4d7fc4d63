//! `codats datasets ...`: list, describe, download, verify, cache, and the loader benchmark.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::DataArgs;
use crate::data::images::catalog::{self, ImageDataset};
use crate::data::registry::{self, DatasetName, LoadOptions};
use crate::data::{cache, card::Card, plot, source};

/// `codats datasets ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// List every dataset codats knows, and whether its files are found.
    List {
        /// Folder holding one sub-folder per dataset (default: $CODATS_DATA_DIR, else the user cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Domains, windows per domain, class balance, channels, window length, sampling rate and what
    /// the loader skipped.
    Info(InfoArgs),
    /// Download a dataset's published archive, verified (archive integrity, expected members, sha256
    /// where known) and saved atomically.
    Download {
        /// Dataset name.
        #[arg(value_enum)]
        name: DatasetName,
        /// Folder to put it in (default: $CODATS_DATA_DIR/<name>, else the user cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a dataset's archive (integrity, members, sha256 where known) and that every file parses.
    Verify {
        /// Dataset name.
        #[arg(value_enum)]
        name: DatasetName,
        /// Folder (or file) holding this dataset's files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Manage the cache of preprocessed windows ($CODATS_CACHE_DIR, else <user cache>/codats/cache).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Benchmark the loaders: UCI HAR cold and cached loads, HHAR-format CSV parse speed (MB/s),
    /// beside pandas.read_csv and polars on the same file.
    Bench(BenchArgs),
}

/// `codats datasets info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Dataset name: a sensor dataset or an image dataset (mnist, digits, cifar10,
    /// image_folder); `codats datasets list` shows them all.
    #[arg(value_parser = parse_any)]
    pub name: AnyDataset,
    /// Folder (or file) holding this dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also draw the class balance per domain to this .png or .svg file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// image_folder: resize every image to WIDTHxHEIGHT, as `codats ssl train --resize`.
    #[arg(long, value_name = "WIDTHxHEIGHT", value_parser = super::parse_size)]
    pub resize: Option<[u32; 2]>,
    /// image_folder: gray or rgb channels, as `codats ssl train --color`.
    #[arg(long, value_enum, default_value_t = crate::config::images::ColorMode::Gray)]
    pub color: crate::config::images::ColorMode,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `codats datasets cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Delete cached windows: all of them, one dataset's, or those built from one data folder.
    Clear {
        /// Only this dataset's entries.
        #[arg(value_enum)]
        name: Option<DatasetName>,
        /// Only entries built from this data folder (or file).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the cache folder.
    Path,
}

/// `codats datasets bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// UCI HAR folder (default: --data-dir lookup for ucihar).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Rows of the generated HHAR-format CSV.
    #[arg(long, default_value_t = 5_000_000)]
    pub rows: usize,
    /// Python interpreter with pandas for the comparison (skipped when it cannot import pandas).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Folder for the generated CSV and the benchmark cache (default: a temp folder, removed after).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Repetitions of each timing (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

/// Runs `codats datasets ...`.
pub fn run(c: DatasetsCommand) -> Result<()> {
    match c {
        DatasetsCommand::List { data_dir } => {
            for &d in DatasetName::all() {
                let card = d.card()?;
                let dir = match &data_dir {
                    Some(root) => root.join(d.as_str()),
                    None => registry::dataset_dir(d, None),
                };
                let status = match d {
                    DatasetName::Synthetic => "built-in",
                    _ => match registry::find_inputs(d, &dir) {
                        Ok(_) => "found",
                        Err(_) => "missing",
                    },
                };
                println!("{:<12} {status:<8} {}", d.as_str(), card.summary);
            }
            for d in ImageDataset::ALL {
                let dir = d.dir(data_dir.as_ref().map(|r| r.join(d.folder())).as_deref());
                let status = if catalog::found(d, &dir) {
                    "found"
                } else {
                    "missing"
                };
                println!("{:<12} {status:<8} {}", d.as_str(), d.summary());
            }
            Ok(())
        }
        DatasetsCommand::Info(a) => info(a),
        DatasetsCommand::Download { name, data_dir } => download_cmd(name, data_dir),
        DatasetsCommand::Verify {
            name,
            data_dir,
            data,
        } => verify(name, data_dir, &data),
        DatasetsCommand::Cache(CacheCommand::Clear { name, data_dir }) => {
            let dir = cache::default_dir();
            let c = cache::clear(&dir, name.map(|n| n.as_str()), data_dir.as_deref())?;
            println!(
                "removed {} cache entries ({:.1} MB) from {}",
                c.files,
                c.bytes as f64 / 1e6,
                dir.display()
            );
            Ok(())
        }
        DatasetsCommand::Cache(CacheCommand::Path) => {
            println!("{}", cache::default_dir().display());
            Ok(())
        }
        DatasetsCommand::Bench(a) => {
            crate::bench::loaders::run(&crate::bench::loaders::LoaderBench {
                data_dir: a.data_dir,
                rows: a.rows,
                python: a.python,
                work_dir: a.work_dir,
                repeat: a.repeat,
            })
        }
    }
}

/// A sensor or an image dataset name.
#[derive(Debug, Clone, Copy)]
pub enum AnyDataset {
    /// Per-participant sensor windows.
    Sensor(DatasetName),
    /// Images.
    Image(ImageDataset),
}

fn parse_any(name: &str) -> std::result::Result<AnyDataset, String> {
    if let Some(d) = ImageDataset::parse(name) {
        return Ok(AnyDataset::Image(d));
    }
    DatasetName::parse(name)
        .map(AnyDataset::Sensor)
        .map_err(|e| {
            let images: Vec<&str> = ImageDataset::ALL.iter().map(|d| d.as_str()).collect();
            format!("{e}; image datasets: {}", images.join(", "))
        })
}

fn info(a: InfoArgs) -> Result<()> {
    let name = match a.name {
        AnyDataset::Sensor(n) => n,
        AnyDataset::Image(d) => {
            let dir = d.dir(a.data_dir.as_deref());
            let opts = crate::config::images::folder_options(a.resize, a.color);
            let data = catalog::load(d, &dir, &opts)?;
            print!("{}", data.describe());
            return Ok(());
        }
    };
    let a = InfoArgs {
        name: AnyDataset::Sensor(name),
        ..a
    };
    let data = a.data.options(name)?;
    let mut opts = LoadOptions::new(a.data_dir.as_deref(), true, false, data);
    if a.data.no_cache {
        opts.cache = None;
    }
    let l = registry::open(name, &opts)?;
    print!("{}", l.describe());
    if let Some(path) = &a.plot {
        plot::class_balance(&l.dataset, path)?;
        println!("class balance plot: {}", path.display());
    }
    Ok(())
}

fn download_cmd(name: DatasetName, data_dir: Option<PathBuf>) -> Result<()> {
    let card = name.card()?;
    let Some(src) = &card.source else {
        match name {
            DatasetName::Synthetic => {
                println!("synthetic is generated on the fly; nothing to download")
            }
            _ => println!(
                "{} reads your own file (--data-dir FILE); nothing to download",
                name.as_str()
            ),
        }
        return Ok(());
    };
    let dir = registry::dataset_dir(name, data_dir.as_deref());
    let dest = dir.join(&src.archive);
    let existed = dest.is_file();
    let path = registry::ensure(name, &card, &dir, true)?;
    if existed {
        println!(
            "{} is already at {}; verifying it",
            name.as_str(),
            path.display()
        );
        verify_archive_file(name, &card, &path)?;
    } else {
        println!(
            "{} is ready at {} (verified)",
            name.as_str(),
            path.display()
        );
    }
    if name == DatasetName::Uwave {
        println!(
            "next: unzip it there, then: {}",
            crate::data::uwave::EXTRACT_HINT
        );
    }
    Ok(())
}

/// Verifies one archive file and prints what was checked.
fn verify_archive_file(name: DatasetName, card: &Card, path: &Path) -> Result<()> {
    if name == DatasetName::Ucihar {
        let spec = crate::data::spec::DatasetSpec::ucihar()?;
        crate::data::ucihar::verify_archive(path, &spec)?;
        println!(
            "archive {}: ok ({} members present with their published sizes and CRC-32)",
            path.display(),
            spec.members().count()
        );
        return Ok(());
    }
    let Some(src) = &card.source else {
        return Ok(());
    };
    let c = source::verify_archive(path, src)?;
    println!(
        "archive {}: ok ({} members, {:.1} MB uncompressed, every member read and checked; expected members present)",
        path.display(),
        c.members,
        c.bytes as f64 / 1e6
    );
    println!(
        "sha256 {} ({})",
        c.sha256,
        if c.sha256_known {
            "matches the card"
        } else {
            "not recorded in the card; nothing to compare with"
        }
    );
    Ok(())
}

fn verify(name: DatasetName, data_dir: Option<PathBuf>, data: &DataArgs) -> Result<()> {
    let card = name.card()?;
    let dir = registry::dataset_dir(name, data_dir.as_deref());
    if let Some(src) = &card.source {
        let archive = if dir.is_file() {
            dir.clone()
        } else {
            dir.join(&src.archive)
        };
        let is_archive = archive.is_file()
            && (archive.extension().is_some_and(|e| e == "zip")
                || archive.to_string_lossy().ends_with(".tar.gz"));
        if is_archive {
            verify_archive_file(name, &card, &archive)?;
        } else {
            println!(
                "no archive at {}; checking the extracted files",
                archive.display()
            );
        }
    }
    let mut opts = LoadOptions::new(data_dir.as_deref(), true, false, data.options(name)?);
    opts.cache = None;
    let l = registry::open(name, &opts).with_context(|| format!("verifying {}", name.as_str()))?;
    println!(
        "{}: every file parses: {} domains, {} windows",
        name.as_str(),
        l.dataset.domains.len(),
        l.dataset.n_windows()
    );
    print!("{}", l.report);
    Ok(())
}
