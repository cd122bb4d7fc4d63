//! The fuzz targets' seed corpus (`fuzz/corpus/<target>/`) replayed through the same entry points
//! (`codats::fuzzing`) on stable Rust, so every input the fuzzers were seeded with (and every
//! crash they found, added there) keeps parsing without a panic: a value, or a one-line error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// (target, seed file name) -> what the entry point must return for it.
const EXPECTED: &[(&str, &str, Result<&str, &str>)] = &[
    ("ucihar_signals", "one_window.txt", Ok("1 windows")),
    ("ucihar_labels", "labels.txt", Ok("6 ids")),
    ("ucihar_labels", "subjects.txt", Ok("4 ids")),
    ("ucihar_labels", "crlf.txt", Ok("2 ids")),
    (
        "ucihar_zip",
        "tiny.zip",
        Ok("2 domains, 4 windows, 6 classes"),
    ),
    (
        "hhar_csv",
        "one_window.csv",
        Ok("1 domains, 1 windows, 6 classes"),
    ),
    (
        "wisdm_raw",
        "one_window.txt",
        Ok("1 domains, 1 windows, 6 classes"),
    ),
    ("uwave_gesture", "gesture.txt", Ok("6 values")),
    ("hapt_labels", "labels.txt", Ok("3 segments")),
    ("hapt_signal", "acc.txt", Ok("6 values")),
    (
        "tabular_csv",
        "two_domains.csv",
        Ok("2 domains, 8 windows, 2 classes"),
    ),
    ("idx", "images.idx", Ok("2 images of 2x3")),
    ("idx", "labels.idx", Ok("3 labels")),
    // Found by the fuzzer: 3 dimensions of 2^32 - 1 overflowed u64 (a panic with overflow
    // checks, a wrapped and wrong size without).
    (
        "idx",
        "crash-dimensions-overflow-u64.idx",
        Err("fuzz-input: truncated: expected 18446744073709551615 bytes, found 16"),
    ),
    ("cifar_batch", "one_record.bin", Ok("1 images, 3072 bytes")),
    ("digits_csv", "two_rows.csv", Ok("2 images")),
    ("sweep_spec", "smoke.toml", Ok("4 jobs")),
    ("archive_members", "traversal.zip", Ok("2 members")),
    ("archive_members", "traversal.tar", Ok("3 members")),
];

#[test]
fn every_seed_parses_to_a_value_or_a_one_line_error_without_panicking() {
    let mut seen = 0;
    for target in codats::fuzzing::TARGETS {
        let dir = corpus().join(target.name);
        let seeds = files(&dir);
        assert!(
            !seeds.is_empty(),
            "fuzz target {} has no seed in {}",
            target.name,
            dir.display()
        );
        for seed in seeds {
            let data = std::fs::read(&seed).expect("read seed");
            let out = catch_unwind(AssertUnwindSafe(|| {
                codats::fuzzing::check(target.name, &data)
            }))
            .unwrap_or_else(|_| panic!("{} panicked on {}", target.name, seed.display()));
            let name = seed.file_name().unwrap().to_str().unwrap();
            if let Some((_, _, want)) = EXPECTED
                .iter()
                .find(|(t, f, _)| *t == target.name && *f == name)
            {
                assert_eq!(
                    out.as_deref().map_err(String::as_str),
                    *want,
                    "{}",
                    seed.display()
                );
                seen += 1;
            } else {
                // Every other seed is a refused input (its message is in docs/BAD_INPUT.md);
                // the `crash-*` ones were found by the fuzzers and broke the one-line rule
                // that `check` asserts.
                assert!(out.is_err(), "{} was accepted: {out:?}", seed.display());
            }
        }
    }
    assert_eq!(seen, EXPECTED.len(), "a seed named in EXPECTED is missing");
}

#[test]
fn every_corpus_folder_belongs_to_a_target_and_every_target_to_a_fuzz_binary() {
    for entry in std::fs::read_dir(corpus()).expect("corpus") {
        let name = entry.expect("entry").file_name();
        let name = name.to_str().expect("utf-8");
        assert!(
            codats::fuzzing::target(name).is_some(),
            "fuzz/corpus/{name} matches no target in codats::fuzzing::TARGETS"
        );
    }
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
    for t in codats::fuzzing::TARGETS {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{}.rs", t.name));
        let src = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        assert!(
            src.contains(&format!("check(\"{}\", data)", t.name)),
            "{} does not call its entry point",
            file.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "fuzz/Cargo.toml has no [[bin]] {}",
            t.name
        );
    }
}
