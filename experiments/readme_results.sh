#!/usr/bin/env bash
# The runs behind README "Results": experiments/readme_ucihar.toml (3 of the paper's UCI HAR pairs
# and one multi-source problem x none / codats / codats_ws / target_only, 500 steps at lr 1e-3)
# as a local sweep, then the table of target-test accuracy (last, best_source in brackets).
# Re-running skips finished jobs. `codats report OUT_DIR` makes the full report from the same runs.
# Usage: CODATS_DATA_DIR=../shared/data experiments/readme_results.sh OUT_DIR
set -euo pipefail
out=${1:?usage: readme_results.sh OUT_DIR}
codats=${CODATS:-target/release/codats}
"$codats" sweep run "$(dirname "$0")/readme_ucihar.toml" --out "$out" --jobs 1 --threads 2
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {}
for r in sorted(out.glob("runs/*/result.json")):
    j = json.loads(r.read_text())
    key = (",".join(map(str, j["sources"])), j["target"])
    sel = j["selection"]
    rows.setdefault(key, {})[j["method"]] = (sel["last"]["target_test"]["accuracy"],
        sel["best_source"]["target_test"]["accuracy"])
methods = ["none", "codats", "codats_ws", "target_only"]
print("| sources → target | " + " | ".join(methods) + " |")
print("|---|" + "---|" * len(methods))
for (s, t), v in sorted(rows.items(), key=lambda kv: (len(kv[0][0]), kv[0])):
    cells = [f"{100*v[m][0]:.1f} ({100*v[m][1]:.1f})" if m in v else "–" for m in methods]
    print(f"| {s} → {t} | " + " | ".join(cells) + " |")
PY
