//! Running the `codats` binary with the real data folder ([`super::real_data_root`]).

use std::process::{Command, Output};

/// `codats ARGS` with `CODATS_DATA_DIR` set to the real data folder.
pub fn codats(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codats"))
        .args(args)
        .env("CODATS_DATA_DIR", super::real_data_root())
        .output()
        .expect("run codats")
}

/// Runs `codats ARGS`, which must succeed; its stdout.
pub fn ok(args: &[&str]) -> String {
    let o = codats(args);
    assert!(
        o.status.success(),
        "codats {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `codats ARGS`, which must fail without a panic; its stderr, trimmed.
pub fn err(args: &[&str]) -> String {
    let o = codats(args);
    assert!(!o.status.success(), "codats {args:?} succeeded");
    assert_ne!(o.status.code(), Some(101), "panicked: {args:?}");
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}
