//! Command-line wiring for data: the loader options shared by `train` and `datasets info`, the
//! `codats datasets ...` subcommands, and the loader benchmark.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::data::registry::{self, DataOptions, DatasetName, LoadOptions, Loaded};
use crate::data::tabular::TabularOptions;
use crate::data::window::{LabelRule, WindowSpec};
use crate::data::{cache, card::Card, plot, source, Dataset};

/// Loader options: tabular columns and windows, WISDM/HAPT switches, synthetic settings, cache.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Data options")]
pub struct DataArgs {
    /// tabular: column holding the domain (participant) id.
    #[arg(long)]
    pub domain_col: Option<String>,
    /// tabular: column holding the class label.
    #[arg(long)]
    pub label_col: Option<String>,
    /// tabular: channel columns, comma separated, in window order.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub channels: Option<Vec<String>>,
    /// tabular: column to order each recording's rows by (default: file order).
    #[arg(long)]
    pub time_col: Option<String>,
    /// tabular: recording id column; windows never cross recordings.
    #[arg(long)]
    pub group_col: Option<String>,
    /// tabular: samples per window [default: 128].
    #[arg(long)]
    pub window_length: Option<usize>,
    /// tabular: samples between window starts [default: the window length, no overlap].
    #[arg(long)]
    pub window_stride: Option<usize>,
    /// tabular: a window's label: its last sample's, or the most frequent [default: last].
    #[arg(long, value_enum)]
    pub label_rule: Option<LabelRule>,
    /// tabular: sampling rate in Hz (shown by `datasets info`).
    #[arg(long)]
    pub sample_rate: Option<f64>,
    /// tabular: do not z-score windows per domain.
    #[arg(long)]
    pub no_zscore: bool,
    /// wisdm_ar / wisdm_at: keep every user (the reference keeps users with more than 19200 records).
    #[arg(long)]
    pub wisdm_all_users: bool,
    /// ucihapt: add the postural transitions (activities 7-12) as classes.
    #[arg(long)]
    pub hapt_transitions: bool,
    /// synthetic: number of domains [default: 10].
    #[arg(long)]
    pub synthetic_domains: Option<usize>,
    /// synthetic: number of classes [default: 3].
    #[arg(long)]
    pub synthetic_classes: Option<usize>,
    /// synthetic: channels per window (>= 2) [default: 3].
    #[arg(long)]
    pub synthetic_channels: Option<usize>,
    /// synthetic: samples per window [default: 128].
    #[arg(long)]
    pub synthetic_length: Option<usize>,
    /// synthetic: windows per class per domain [default: 60].
    #[arg(long)]
    pub synthetic_windows: Option<usize>,
    /// synthetic: overall domain shift, 0 = identical domains [default: 1].
    #[arg(long)]
    pub synthetic_shift: Option<f64>,
    /// synthetic: weight of the per-domain frequency offset [default: 1].
    #[arg(long)]
    pub synthetic_freq_shift: Option<f64>,
    /// synthetic: weight of the per-domain frequency scale [default: 1].
    #[arg(long)]
    pub synthetic_freq_scale: Option<f64>,
    /// synthetic: weight of the per-domain channel rotation [default: 1].
    #[arg(long)]
    pub synthetic_rotation: Option<f64>,
    /// synthetic: weight of the per-domain extra noise [default: 1].
    #[arg(long)]
    pub synthetic_noise_spread: Option<f64>,
    /// synthetic: base noise standard deviation [default: 0.3].
    #[arg(long)]
    pub synthetic_noise: Option<f64>,
    /// synthetic: generator seed [default: 0].
    #[arg(long)]
    pub synthetic_seed: Option<u64>,
    /// Parse the files even when a cached copy of the windows exists (and do not write one).
    #[arg(long)]
    pub no_cache: bool,
}

impl DataArgs {
    /// The loader options these flags give for dataset `name` (checked against it).
    pub fn options(&self, name: DatasetName) -> Result<DataOptions> {
        let tabular_flags = self.domain_col.is_some()
            || self.label_col.is_some()
            || self.channels.is_some()
            || self.time_col.is_some()
            || self.group_col.is_some()
            || self.window_length.is_some()
            || self.window_stride.is_some()
            || self.label_rule.is_some()
            || self.sample_rate.is_some()
            || self.no_zscore;
        let synthetic_flags = self.synthetic_domains.is_some()
            || self.synthetic_classes.is_some()
            || self.synthetic_channels.is_some()
            || self.synthetic_length.is_some()
            || self.synthetic_windows.is_some()
            || self.synthetic_shift.is_some()
            || self.synthetic_freq_shift.is_some()
            || self.synthetic_freq_scale.is_some()
            || self.synthetic_rotation.is_some()
            || self.synthetic_noise_spread.is_some()
            || self.synthetic_noise.is_some()
            || self.synthetic_seed.is_some();
        if tabular_flags && name != DatasetName::Tabular {
            bail!(
                "--domain-col, --label-col, --channels, --time-col, --group-col, --window-*, --label-rule, \
                 --sample-rate and --no-zscore apply to --dataset tabular, not {}",
                name.as_str()
            );
        }
        if synthetic_flags && name != DatasetName::Synthetic {
            bail!(
                "--synthetic-* options apply to --dataset synthetic, not {}",
                name.as_str()
            );
        }
        let card = name.card()?;
        let mut opts = DataOptions {
            wisdm_all_users: self.wisdm_all_users,
            hapt_transitions: self.hapt_transitions,
            ..Default::default()
        };
        if name == DatasetName::Tabular {
            let missing: Vec<&str> = [
                ("--domain-col", self.domain_col.is_none()),
                ("--label-col", self.label_col.is_none()),
                ("--channels", self.channels.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| *f)
            .collect();
            if !missing.is_empty() {
                bail!(
                    "--dataset tabular needs {} (and --data-dir pointing at the CSV/Parquet file)",
                    missing.join(", ")
                );
            }
            let default = card.window.unwrap_or(WindowSpec {
                length: 128,
                stride: 128,
                label: LabelRule::Last,
                reference_bounds: false,
            });
            let length = self.window_length.unwrap_or(default.length);
            opts.tabular = Some(TabularOptions {
                domain_col: self.domain_col.clone().unwrap_or_default(),
                label_col: self.label_col.clone().unwrap_or_default(),
                channels: self.channels.clone().unwrap_or_default(),
                time_col: self.time_col.clone(),
                group_col: self.group_col.clone(),
                window: WindowSpec {
                    length,
                    stride: self.window_stride.unwrap_or(length),
                    label: self.label_rule.unwrap_or(default.label),
                    reference_bounds: false,
                },
                sample_rate_hz: self.sample_rate,
                zscore: !self.no_zscore,
            });
        }
        if name == DatasetName::Synthetic {
            let mut c = card.synthetic.clone().unwrap_or_default();
            let set = |v: Option<usize>, slot: &mut usize| {
                if let Some(v) = v {
                    *slot = v
                }
            };
            set(self.synthetic_domains, &mut c.domains);
            set(self.synthetic_classes, &mut c.classes);
            set(self.synthetic_channels, &mut c.channels);
            set(self.synthetic_length, &mut c.length);
            set(self.synthetic_windows, &mut c.windows_per_class);
            let setf = |v: Option<f64>, slot: &mut f64| {
                if let Some(v) = v {
                    *slot = v
                }
            };
            setf(self.synthetic_shift, &mut c.shift);
            setf(self.synthetic_freq_shift, &mut c.freq_shift);
            setf(self.synthetic_freq_scale, &mut c.freq_scale);
            setf(self.synthetic_rotation, &mut c.rotation);
            setf(self.synthetic_noise_spread, &mut c.noise_spread);
            setf(self.synthetic_noise, &mut c.noise);
            if let Some(s) = self.synthetic_seed {
                c.seed = s;
            }
            c.validate().map_err(anyhow::Error::msg)?;
            opts.synthetic = Some(c);
        }
        registry::check_options(name, &opts)?;
        Ok(opts)
    }
}

/// Loads a dataset for a run (train, resume, eval), printing where it came from and what was skipped
/// to stderr unless `quiet`.
pub fn load_for_run(
    name: DatasetName,
    data_dir: Option<&Path>,
    offline: bool,
    quiet: bool,
    data: &DataOptions,
    no_cache: bool,
) -> Result<Dataset> {
    let mut opts = LoadOptions::new(data_dir, offline, !quiet, data.clone());
    if no_cache {
        opts.cache = None;
    }
    let loaded = registry::open(name, &opts)?;
    if !quiet {
        eprintln!(
            "{}: {} domains, {} windows ({})",
            name.as_str(),
            loaded.dataset.domains.len(),
            loaded.dataset.n_windows(),
            loaded.cache
        );
        for s in &loaded.report.skipped {
            eprintln!(
                "  skipped {} rows: {} (first at {})",
                s.count, s.reason, s.first
            );
        }
    }
    Ok(loaded.dataset)
}

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
    /// Dataset name.
    #[arg(value_enum)]
    pub name: DatasetName,
    /// Folder (or file) holding this dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also draw the class balance per domain to this .png or .svg file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
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
                println!("{:<10} {status:<8} {}", d.as_str(), card.summary);
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
        DatasetsCommand::Bench(a) => bench(a),
    }
}

fn info(a: InfoArgs) -> Result<()> {
    let data = a.data.options(a.name)?;
    let mut opts = LoadOptions::new(a.data_dir.as_deref(), true, false, data);
    if a.data.no_cache {
        opts.cache = None;
    }
    let l = registry::open(a.name, &opts)?;
    print!("{}", describe(&l));
    if let Some(path) = &a.plot {
        plot::class_balance(&l.dataset, path)?;
        println!("class balance plot: {}", path.display());
    }
    Ok(())
}

/// The text of `datasets info`.
pub fn describe(l: &Loaded) -> String {
    use std::fmt::Write;
    let ds = &l.dataset;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} domains, {} windows, {} channels x {} samples, {} classes",
        ds.name,
        ds.domains.len(),
        ds.n_windows(),
        ds.channels,
        ds.length,
        ds.n_classes()
    );
    let _ = writeln!(s, "title: {}", l.card.title);
    let _ = writeln!(s, "source: {} ({})", l.source.display(), l.cache);
    let _ = writeln!(s, "sampling rate: {}", l.sample_rate);
    let _ = writeln!(s, "channels: {}", l.channel_names.join(", "));
    let _ = writeln!(
        s,
        "normalisation: {}",
        if ds.zscore {
            "z-score per domain per channel, fitted on the domain's train split"
        } else {
            "none (windows used as published)"
        }
    );
    if ds.domains.iter().any(|d| d.valid_lengths.is_some()) {
        let lens: Vec<u32> = ds
            .domains
            .iter()
            .flat_map(|d| d.valid_lengths.iter().flatten().copied())
            .collect();
        let (min, max) = (
            lens.iter().min().copied().unwrap_or(0),
            lens.iter().max().copied().unwrap_or(0),
        );
        let _ = writeln!(
            s,
            "windows are zero-padded to {}: real lengths {min}..{max}",
            ds.length
        );
    }
    let _ = writeln!(
        s,
        "classes: {}",
        ds.class_names
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i}={c}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let counts = plot::class_counts(ds);
    let width = ds
        .class_names
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(1)
        .clamp(6, 12);
    let header: Vec<String> = ds
        .class_names
        .iter()
        .map(|c| format!("{:>width$}", c.chars().take(width).collect::<String>()))
        .collect();
    let _ = writeln!(s, "{:>6} {:>7}  {}", "domain", "windows", header.join(" "));
    for (d, c) in ds.domains.iter().zip(&counts) {
        let cells: Vec<String> = c.iter().map(|n| format!("{n:>width$}")).collect();
        let _ = writeln!(s, "{:>6} {:>7}  {}", d.id, d.len(), cells.join(" "));
    }
    let totals: Vec<String> = (0..ds.n_classes())
        .map(|k| format!("{:>width$}", counts.iter().map(|c| c[k]).sum::<usize>()))
        .collect();
    let _ = writeln!(
        s,
        "{:>6} {:>7}  {}",
        "all",
        ds.n_windows(),
        totals.join(" ")
    );
    s.push_str(&l.report.to_string());
    s
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

/// Best of `repeat` timings of `f`, in seconds, and its last result.
fn best_of<T>(repeat: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let r = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    Ok((best, last.expect("ran at least once")))
}

/// Writes `rows` HHAR-format rows (9 users, 6 activities and null, 4 phone models) to `path`.
pub fn write_hhar_csv(path: &Path, rows: usize) -> Result<u64> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(
        w,
        "Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt"
    )?;
    let users = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let models = [
        ("nexus4", "nexus4_1"),
        ("s3", "s3_1"),
        ("s3mini", "s3mini_2"),
        ("samsungold", "samsungold_1"),
    ];
    let acts = [
        "stand",
        "sit",
        "walk",
        "stairsup",
        "stairsdown",
        "bike",
        "null",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..rows {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let block = i / 5000;
        let u = users[block % 9];
        let (m, d) = models[(block / 9) % 4];
        let gt = acts[(i / 700) % 7];
        let v = |k: u32| ((state >> (k * 16)) & 0xffff) as f64 / 3276.8 - 10.0;
        writeln!(
            w,
            "{i},{},{},{:.7},{:.7},{:.7},{u},{m},{d},{gt}",
            1424696633908u64 + i as u64 * 5,
            1424696631913248572u64 + i as u64 * 5_000_000,
            v(0),
            v(1),
            v(2)
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn bench(a: BenchArgs) -> Result<()> {
    let temp = std::env::temp_dir().join(format!("codats-bench-{}", std::process::id()));
    let work = a.work_dir.clone().unwrap_or_else(|| temp.clone());
    std::fs::create_dir_all(&work)?;
    let cache_dir = work.join("cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    println!(
        "codats loader benchmark (best of {}; {} threads available)",
        a.repeat,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // UCI HAR: cold (parse), cold + cache write, cached.
    let har_opts = |cache: Option<PathBuf>| LoadOptions {
        data_dir: a.data_dir.clone(),
        offline: true,
        progress: false,
        cache,
        data: DataOptions::default(),
    };
    let (cold, l) = best_of(a.repeat, || {
        Ok(registry::open(DatasetName::Ucihar, &har_opts(None))?)
    })?;
    let windows = l.dataset.n_windows();
    let t = Instant::now();
    registry::open(DatasetName::Ucihar, &har_opts(Some(cache_dir.clone())))?;
    let first = t.elapsed().as_secs_f64();
    let (cached, l2) = best_of(a.repeat, || {
        Ok(registry::open(
            DatasetName::Ucihar,
            &har_opts(Some(cache_dir.clone())),
        )?)
    })?;
    if !matches!(l2.cache, registry::CacheStatus::Hit(_)) {
        bail!(
            "the second UCI HAR load did not hit the cache: {}",
            l2.cache
        );
    }
    println!("UCI HAR ({windows} windows, {}):", l.source.display());
    println!("  cold load (parse, cache off)      {:>8.3} s", cold);
    println!("  first load (parse + write cache)  {:>8.3} s", first);
    println!("  cached load (hash inputs + read)  {:>8.3} s", cached);

    // HHAR-format CSV parse speed.
    let csv = work.join("hhar_bench.csv");
    let t = Instant::now();
    let bytes = write_hhar_csv(&csv, a.rows)?;
    let mb = bytes as f64 / 1e6;
    println!(
        "HHAR-format CSV: {} rows, {:.1} MB at {} (written in {:.1} s)",
        a.rows,
        mb,
        csv.display(),
        t.elapsed().as_secs_f64()
    );
    let (hsecs, _) = best_of(a.repeat, || Ok(source::sha256_file(&csv)?))?;
    println!(
        "  sha256 of the file (cache key)       {:>8.3} s  {:>7.1} MB/s",
        hsecs,
        mb / hsecs
    );
    let card = Card::builtin("ucihhar")?;
    let (secs, (ds, report)) = best_of(a.repeat, || {
        let mut f = std::fs::File::open(&csv)?;
        Ok(crate::data::hhar::parse(
            &mut f,
            &csv.display().to_string(),
            &card,
        )?)
    })?;
    println!(
        "  codats hhar parser (stream, window)  {:>8.3} s  {:>7.1} MB/s  {:>6.2} M rows/s  ({} windows, {} null rows skipped)",
        secs,
        mb / secs,
        a.rows as f64 / secs / 1e6,
        ds.n_windows(),
        report.skipped_for("gt is null (unlabelled)")
    );
    let (psecs, height) = best_of(a.repeat, || {
        use polars::prelude::*;
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(csv.clone()))?
            .finish()?;
        Ok(df.height())
    })?;
    println!(
        "  polars read_csv (parse only)         {:>8.3} s  {:>7.1} MB/s  ({height} rows)",
        psecs,
        mb / psecs
    );
    let script = format!(
        "import time, pandas\nbest = 1e9\nfor _ in range({}):\n    t = time.perf_counter(); df = pandas.read_csv({:?}); best = min(best, time.perf_counter() - t)\nprint(best, len(df), pandas.__version__)\n",
        a.repeat,
        csv.display().to_string()
    );
    match std::process::Command::new(&a.python)
        .args(["-c", &script])
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.split_whitespace();
            let secs: f64 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            let rows = parts.next().unwrap_or("?");
            let version = parts.next().unwrap_or("?");
            println!(
                "  pandas {version} read_csv (parse only)  {:>8.3} s  {:>7.1} MB/s  ({rows} rows)",
                secs,
                mb / secs
            );
        }
        Ok(out) => println!(
            "  pandas: skipped ({} cannot import pandas: {})",
            a.python,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("  pandas: skipped ({}: {e})", a.python),
    }
    if a.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&temp);
    } else {
        let _ = std::fs::remove_dir_all(&cache_dir);
    }
    Ok(())
}
