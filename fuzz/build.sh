#!/usr/bin/env bash
# Builds every fuzz target on stable Rust, reusing the main release build's dependencies:
#
#   CARGO_TARGET_DIR=/path/to/release/target fuzz/build.sh
#
# (`cargo fuzz build -s none` on nightly builds the same targets, but recompiles every
# dependency with instrumentation.) The binaries land in $CARGO_TARGET_DIR/release/.
set -euo pipefail
cd "$(dirname "$0")"
RUSTC_WRAPPER="$PWD/instrument.sh" cargo build --release --bins "$@"
