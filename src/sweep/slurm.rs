//! The Slurm executor: an sbatch job-array script per batch of jobs (one array task per job),
//! submitted with `sbatch`. Each task runs `codats sweep run-job`, the same code path as the
//! local pool, so results land in the same layout.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::spec::SlurmSettings;
use super::SweepDir;
use crate::train::checkpoint::write_atomic;

/// Slurm's default `MaxArraySize` is 1001: array indices stay below 1000 per script.
pub const DEFAULT_MAX_ARRAY: usize = 1000;

/// Resolved sbatch settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time`.
    pub time: Option<String>,
    /// `--cpus-per-task`, also each job's `--threads`.
    pub cpus: usize,
    /// `--mem`.
    pub mem: Option<String>,
    /// Array throttle `%N`.
    pub max_parallel: Option<usize>,
    /// Extra `#SBATCH` lines.
    pub extra: Vec<String>,
    /// Tasks per array (split larger sweeps into several arrays).
    pub max_array: usize,
}

impl SlurmOptions {
    /// Spec settings with command-line flags taking precedence, checked: every value that
    /// reaches the job script is refused if it holds a control character (a newline would
    /// become a script line of its own), and zero CPUs, array size or throttle are refused.
    pub fn resolve(spec: &SlurmSettings, flags: &SlurmSettings, max_array: usize) -> Result<Self> {
        let opts = Self {
            partition: flags.partition.clone().or(spec.partition.clone()),
            time: flags.time.clone().or(spec.time.clone()),
            cpus: flags.cpus_per_task.or(spec.cpus_per_task).unwrap_or(1),
            mem: flags.mem.clone().or(spec.mem.clone()),
            max_parallel: flags.max_parallel.or(spec.max_parallel),
            extra: spec
                .extra
                .iter()
                .chain(flags.extra.iter())
                .cloned()
                .collect(),
            max_array,
        };
        let named = [
            ("partition", opts.partition.as_deref()),
            ("time", opts.time.as_deref()),
            ("mem", opts.mem.as_deref()),
        ];
        for (key, value) in named {
            if let Some(v) = value {
                script_safe(key, v)?;
            }
        }
        for e in &opts.extra {
            script_safe("extra", e)?;
        }
        if let Some(t) = &opts.time {
            slurm_time(t)?;
        }
        for (key, v) in [
            ("cpus-per-task", Some(opts.cpus)),
            ("max-array", Some(opts.max_array)),
            ("max-parallel", opts.max_parallel),
        ] {
            if v == Some(0) {
                bail!("slurm setting `{key}` must be at least 1 (got 0)");
            }
        }
        Ok(opts)
    }
}

/// Refuses a value with a control character (newline, carriage return, tab, NUL, …) before it is
/// written into a job script.
pub fn script_safe(key: &str, value: &str) -> Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!(
            "slurm setting `{key}` = {value:?} contains the control character U+{:04X}; \
             values written into the sbatch script must be one line",
            c as u32
        );
    }
    Ok(())
}

/// Refuses a `time` that sbatch would reject only once the array is submitted: Slurm's forms
/// are `MINUTES`, `MINUTES:SECONDS`, `HOURS:MINUTES:SECONDS`, `DAYS-HOURS`,
/// `DAYS-HOURS:MINUTES`, `DAYS-HOURS:MINUTES:SECONDS`, or `UNLIMITED` / `INFINITE`.
pub fn slurm_time(value: &str) -> Result<()> {
    let digits = |p: &str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
    let ok = match value {
        "UNLIMITED" | "INFINITE" => true,
        _ => match value.split_once('-') {
            Some((days, rest)) => {
                let parts: Vec<&str> = rest.split(':').collect();
                digits(days) && parts.len() <= 3 && parts.iter().all(|p| digits(p))
            }
            None => {
                let parts: Vec<&str> = value.split(':').collect();
                parts.len() <= 3 && parts.iter().all(|p| digits(p))
            }
        },
    };
    if !ok {
        bail!(
            "slurm setting `time` = {value:?} is not a Slurm time limit (MINUTES, MM:SS, \
             HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED)"
        );
    }
    Ok(())
}

/// One written array script.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayScript {
    /// The sbatch script.
    pub script: PathBuf,
    /// Job indices (into jobs.json), one per line; array task i runs line i + 1.
    pub index_file: PathBuf,
    /// Number of array tasks.
    pub tasks: usize,
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn next_free(dir: &Path) -> usize {
    (1..)
        .find(|n| !dir.join(format!("array-{n:03}-0.sbatch")).exists())
        .unwrap_or(1)
}

/// Writes array scripts for the jobs `indices` (into jobs.json) of `dir`, running `exe`.
pub fn write_scripts(
    dir: &SweepDir,
    exe: &Path,
    opts: &SlurmOptions,
    indices: &[usize],
) -> Result<Vec<ArrayScript>> {
    let root = std::fs::canonicalize(dir.path())
        .with_context(|| format!("resolving {}", dir.path().display()))?;
    // The sweep folder and the executable are written into the script too.
    script_safe("sweep directory", &root.display().to_string())?;
    script_safe("codats executable", &exe.display().to_string())?;
    let sdir = root.join("slurm");
    std::fs::create_dir_all(sdir.join("logs"))?;
    let n = next_free(&sdir);
    // The spec's name goes into the job name and a comment: one word, no control characters.
    let name = dir
        .plan()
        .name
        .replace(|c: char| c.is_whitespace() || c.is_control(), "_");
    let mut out = Vec::new();
    for (k, chunk) in indices.chunks(opts.max_array).enumerate() {
        let script = sdir.join(format!("array-{n:03}-{k}.sbatch"));
        let index_file = sdir.join(format!("array-{n:03}-{k}.idx"));
        let list: String = chunk.iter().map(|i| format!("{i}\n")).collect();
        write_atomic(&index_file, list.as_bytes())?;
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!("#SBATCH --job-name=codats-{name}\n"));
        let throttle = opts
            .max_parallel
            .map(|p| format!("%{p}"))
            .unwrap_or_default();
        s.push_str(&format!(
            "#SBATCH --array=0-{}{throttle}\n",
            chunk.len() - 1
        ));
        s.push_str("#SBATCH --ntasks=1\n");
        s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus));
        if let Some(p) = &opts.partition {
            s.push_str(&format!("#SBATCH --partition={p}\n"));
        }
        if let Some(t) = &opts.time {
            s.push_str(&format!("#SBATCH --time={t}\n"));
        }
        if let Some(m) = &opts.mem {
            s.push_str(&format!("#SBATCH --mem={m}\n"));
        }
        for e in &opts.extra {
            s.push_str(&format!("#SBATCH {e}\n"));
        }
        s.push_str(&format!(
            "#SBATCH --output={}/logs/%A_%a.log\n",
            sdir.display()
        ));
        s.push_str(&format!(
            "# codats sweep {}: array task i runs the job on line i+1 of the index file\n\
             # (an index into jobs.json); results go to runs/<job id>/ as with `codats sweep run`.\n",
            name
        ));
        s.push_str("set -euo pipefail\n");
        s.push_str(&format!(
            "exec {} sweep run-job {} --index-file {} --task \"$SLURM_ARRAY_TASK_ID\" --threads {}\n",
            shell_quote(&exe.display().to_string()),
            shell_quote(&root.display().to_string()),
            shell_quote(&index_file.display().to_string()),
            opts.cpus
        ));
        write_atomic(&script, s.as_bytes())?;
        out.push(ArrayScript {
            script,
            index_file,
            tasks: chunk.len(),
        });
    }
    Ok(out)
}

/// Submits a script with `sbatch --parsable` (and `--wait`: block until every task ended).
/// Returns the Slurm job id.
pub fn submit(script: &ArrayScript, wait: bool) -> Result<String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if wait {
        cmd.arg("--wait");
    }
    cmd.arg(&script.script);
    let out = cmd.output().context(
        "running sbatch (is Slurm installed and configured here? `.ci/slurm-up.sh` starts a local cluster)",
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .lines()
        .next()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if !out.status.success() && (id.is_empty() || !wait) {
        bail!(
            "sbatch {} failed ({}): {}",
            script.script.display(),
            out.status,
            // One line: sbatch's messages joined.
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if id.is_empty() {
        bail!("sbatch printed no job id: {:?}", stdout.trim());
    }
    Ok(id)
}

/// Reads line `task + 1` of an index file: the job index an array task runs.
pub fn index_of_task(index_file: &Path, task: usize) -> Result<usize> {
    let text = std::fs::read_to_string(index_file)
        .with_context(|| format!("reading {}", index_file.display()))?;
    let line = text.lines().nth(task).with_context(|| {
        format!(
            "array task {task} is beyond the {} lines of {}",
            text.lines().count(),
            index_file.display()
        )
    })?;
    line.trim()
        .parse()
        .with_context(|| format!("line {} of {}", task + 1, index_file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(partition: &str) -> SlurmSettings {
        SlurmSettings {
            partition: Some(partition.to_string()),
            time: None,
            cpus_per_task: Some(2),
            mem: None,
            max_parallel: None,
            extra: Vec::new(),
        }
    }

    #[test]
    fn a_newline_in_any_script_value_is_refused() {
        let none = SlurmSettings::default();
        let err = SlurmOptions::resolve(&settings("cpu\ntouch x"), &none, 10)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "slurm setting `partition` = \"cpu\\ntouch x\" contains the control character \
             U+000A; values written into the sbatch script must be one line"
        );
        for (key, f) in [
            (
                "time",
                SlurmSettings {
                    time: Some("1:00\rrm -rf".into()),
                    ..none.clone()
                },
            ),
            (
                "mem",
                SlurmSettings {
                    mem: Some("4G\nid".into()),
                    ..none.clone()
                },
            ),
            (
                "extra",
                SlurmSettings {
                    extra: vec!["--qos=x\nid".into()],
                    ..none.clone()
                },
            ),
        ] {
            let err = SlurmOptions::resolve(&none, &f, 10)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("slurm setting `{key}`")), "{err}");
        }
        assert!(SlurmOptions::resolve(&settings("cpu"), &none, 10).is_ok());
    }

    #[test]
    fn a_time_limit_must_be_one_slurm_accepts() {
        for good in [
            "30",
            "30:00",
            "04:00:00",
            "2-0",
            "2-12:00",
            "1-00:30:00",
            "UNLIMITED",
        ] {
            assert!(slurm_time(good).is_ok(), "{good}");
        }
        for bad in [
            "", "4h", "1:2:3:4", "1-", "-5", "1:-2", "1-2-3", "01:00 ", "∞",
        ] {
            let err = slurm_time(bad).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "slurm setting `time` = {bad:?} is not a Slurm time limit (MINUTES, MM:SS, \
                     HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED)"
                )
            );
        }
        let four_hours = SlurmSettings {
            time: Some("4h".into()),
            ..settings("cpu")
        };
        assert!(SlurmOptions::resolve(&four_hours, &SlurmSettings::default(), 10).is_err());
    }

    #[test]
    fn zero_cpus_array_size_or_throttle_are_refused() {
        let base = settings("cpu");
        let zero_cpus = SlurmSettings {
            cpus_per_task: Some(0),
            ..base.clone()
        };
        let err = SlurmOptions::resolve(&base, &zero_cpus, 10)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "slurm setting `cpus-per-task` must be at least 1 (got 0)"
        );
        let err = SlurmOptions::resolve(&base, &base, 0)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "slurm setting `max-array` must be at least 1 (got 0)");
        let throttle = SlurmSettings {
            max_parallel: Some(0),
            ..base.clone()
        };
        let err = SlurmOptions::resolve(&base, &throttle, 10)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "slurm setting `max-parallel` must be at least 1 (got 0)"
        );
    }
}
