//! The Slurm executor on a real cluster: `.ci/run` starts a single-node Slurm (munged,
//! slurmctld, slurmd) with `.ci/slurm-up.sh` and exports SLURM_CONF. This test submits the smoke
//! sweep as a job array, waits for it, and checks every result, per-task log and `status`.

use std::path::Path;
use std::process::Command;

mod common;

fn require_slurm() {
    let sinfo = Command::new("sinfo").args(["-h", "-o", "%a %t"]).output();
    match sinfo {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => {}
        Ok(o) => panic!(
            "this test needs a running Slurm cluster, but `sinfo` failed: {}\n\
             start one with `eval \"$(.ci/slurm-up.sh)\"` (as root; .ci/run does this) and rerun",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "this test needs Slurm (sbatch, sinfo), which is not installed here ({e}); \
             `eval \"$(.ci/slurm-up.sh)\"` installs slurm-wlm and munge and starts a local cluster \
             (.ci/run does this before `cargo test`)"
        ),
    }
}

fn codats(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(args)
        .output()
        .expect("run codats");
    common::succeeded(o, &args)
}

#[test]
fn smoke_sweep_runs_as_a_slurm_job_array() {
    require_slurm();
    let tmp = common::TempDir::new("sweep-slurm");
    let dir = tmp.path().join("smoke");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let (spec, dir_s) = (spec.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));

    // --dry-run writes the script and submits nothing.
    let dry = codats(&[
        "sweep",
        "slurm",
        spec,
        "--out",
        dir_s,
        "--dry-run",
        "--mem",
        "500M",
    ]);
    assert!(dry.contains("(4 tasks); submit with: sbatch"), "{dry}");
    let script = std::fs::read_to_string(dir.join("slurm/array-001-0.sbatch")).expect("script");
    for line in [
        "#SBATCH --array=0-3\n",
        "#SBATCH --cpus-per-task=1\n",
        "#SBATCH --time=00:10:00\n",
        "#SBATCH --mem=500M\n",
        "/logs/%A_%a.log\n",
        "sweep run-job",
        "--task \"$SLURM_ARRAY_TASK_ID\" --threads 1\n",
    ] {
        assert!(script.contains(line), "missing {line:?} in\n{script}");
    }
    assert!(
        !dir.join("runs").read_dir().expect("runs").any(|_| true),
        "dry run ran nothing"
    );

    let out = codats(&[
        "sweep", "slurm", spec, "--out", dir_s, "--wait", "--mem", "500M",
    ]);
    assert!(out.contains("as Slurm job"), "{out}");
    assert!(
        out.contains("4 jobs: 4 done, 0 running, 0 failed, 0 pending"),
        "{out}"
    );
    let jobs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("jobs.json")).expect("jobs.json"))
            .expect("json");
    for job in jobs["jobs"].as_array().expect("jobs") {
        let id = job["id"].as_str().expect("id");
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("runs").join(id).join("result.json"))
                .expect("result.json"),
        )
        .expect("json");
        assert_eq!(r["steps"], 20, "{id}");
        let log =
            std::fs::read_to_string(dir.join("logs").join(format!("{id}.log"))).expect("job log");
        assert!(log.contains(", slurm job "), "{id} ran under Slurm:\n{log}");
    }
    let task_logs = std::fs::read_dir(dir.join("slurm/logs"))
        .expect("slurm logs")
        .count();
    assert_eq!(task_logs, 4, "one Slurm log per array task");
    assert!(
        dir.join("slurm/array-002-0.sbatch").is_file(),
        "the real submission wrote its own script"
    );

    // Resubmitting a finished sweep submits nothing.
    let again = codats(&["sweep", "slurm", spec, "--out", dir_s]);
    assert!(again.contains("nothing to submit"), "{again}");
}
