#!/usr/bin/env bash
# The whole test suite on a fresh machine, as the README gives it:
#
#   CODATS_DATA_DIR=../shared/data tests/run.sh        # extra arguments go to `cargo test`
#
# tests/sweep_slurm.rs needs a running Slurm cluster. Unless `sinfo` already answers, this starts
# a single-node one (`.ci/slurm-up.sh`: installs Debian's slurm-wlm and munge when missing, which
# needs root and the package registry) and stops it on exit. Then `cargo test --release`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { command -v sinfo >/dev/null && sinfo -h >/dev/null 2>&1; }; then
    export CODATS_SLURM_DIR="$(mktemp -d /tmp/codats-slurm.XXXXXX)"
    trap '.ci/slurm-down.sh "$CODATS_SLURM_DIR"' EXIT
    SLURM_ENV="$(.ci/slurm-up.sh)"
    eval "$SLURM_ENV"
fi
cargo test --release "$@"
