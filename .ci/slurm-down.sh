#!/usr/bin/env bash
# Stops the cluster started by .ci/slurm-up.sh: slurmd, slurmctld, munged, by the PIDs in their
# pid files under $CODATS_SLURM_DIR (or the folder given as $1).
set -uo pipefail
DIR="${1:-${CODATS_SLURM_DIR:-}}"
[ -n "$DIR" ] && [ -d "$DIR" ] || { echo "slurm-down: no cluster folder (set CODATS_SLURM_DIR)" >&2; exit 0; }
for pidfile in "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid" "$DIR/munge/munged.pid"; do
    [ -s "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    echo "slurm-down: stopped $(basename "$pidfile" .pid) (pid $pid)" >&2
done
