#!/usr/bin/env bash
# RUSTC_WRAPPER for `fuzz/build.sh`: adds libFuzzer's coverage instrumentation (what
# `cargo fuzz build -s none` adds) to the codats crate and the fuzz targets only. Dependencies
# build exactly as in the main release build, so that build's compiled crates are reused.
rustc="$1"; shift
case " $* " in
*" --crate-name codats "* | *" --crate-name codats_fuzz "* | *"fuzz_targets/"*)
    exec "$rustc" "$@" --cfg fuzzing -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares ;;
*) exec "$rustc" "$@" ;;
esac
