//! `codats datasets bench`: UCI HAR cold and cached loads, and the HHAR-format CSV parser's speed
//! beside polars and pandas on the same generated file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::data::card::Card;
use crate::data::registry::{self, DataOptions, DatasetName, LoadOptions};
use crate::data::source;

/// What to measure.
#[derive(Debug, Clone)]
pub struct LoaderBench {
    /// UCI HAR folder (default: the usual lookup).
    pub data_dir: Option<PathBuf>,
    /// Rows of the generated HHAR-format CSV.
    pub rows: usize,
    /// Python interpreter with pandas (skipped when it cannot import pandas).
    pub python: String,
    /// Folder for the generated CSV and the cache (default: a temp folder, removed after).
    pub work_dir: Option<PathBuf>,
    /// Repetitions of each timing (the best is reported).
    pub repeat: usize,
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

/// Runs the loader benchmark and prints its table.
pub fn run(a: &LoaderBench) -> Result<()> {
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
