// Records the git commit in the binary so every run's config.toml says which code produced it.
//
// Rebuilds when the commit changes: watches the file of the checked-out branch (or HEAD when
// detached) and packed-refs, found through git so that a linked worktree (whose `.git` is a
// file) is handled too. Watching a path that does not exist would rebuild on every build.
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let mut watch: Vec<PathBuf> = Vec::new();
    if let (Some(dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        watch.push(Path::new(&dir).join("HEAD"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(Path::new(&common).join(branch));
        }
        watch.push(Path::new(&common).join("packed-refs"));
    }
    watch.retain(|p| p.exists());
    if watch.is_empty() {
        println!("cargo:rerun-if-changed=build.rs");
    }
    for p in &watch {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    if let Some(hash) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=CODATS_GIT_COMMIT={hash}");
    }
}
