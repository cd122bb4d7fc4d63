#!/usr/bin/env bash
# The runs behind README "Results": 3 of the paper's UCI HAR pairs and one multi-source problem,
# each with none / codats / codats_ws / upper, at reduced steps (see README for why).
# Usage: CODATS_DATA_DIR=../shared/data experiments/readme_results.sh OUT_DIR [STEPS]
set -euo pipefail
out=${1:?usage: readme_results.sh OUT_DIR [STEPS]}
steps=${2:-500}
codats=${CODATS:-target/release/codats}
mkdir -p "$out"
# PROBLEMS="src:tgt ..." overrides the list (sources comma separated).
read -r -a problems <<< "${PROBLEMS:-2:11 1,3,5:7 7:13 12:16}"
for p in "${problems[@]}"; do
  src=${p%%:*}; tgt=${p##*:}
  for m in none codats codats_ws upper; do
    dir="$out/${src//,/_}-to-$tgt-$m"
    [ -f "$dir/result.json" ] && continue
    rm -rf "$dir"
    "$codats" train --dataset ucihar --sources "$src" --target "$tgt" --method "$m" \
      --steps "$steps" --lr 1e-3 --eval-every 100 --seed 0 --threads 2 --offline --quiet --out "$dir"
  done
done
# Table: target-test accuracy (%) of the last / best_source weights.
python3 - "$out" <<'PY'
import json, sys, pathlib, csv
out = pathlib.Path(sys.argv[1])
rows = {}
for r in sorted(out.glob("*/result.json")):
    j = json.loads(r.read_text())
    key = (",".join(map(str, j["sources"])), j["target"])
    m = csv.DictReader(open(r.parent / "metrics.csv"))
    sps = [float(x["steps_per_s"]) for x in m]
    rows.setdefault(key, {})[j["method"]] = (j["selection"]["last"]["target_test"]["accuracy"],
        j["selection"]["best_source"]["target_test"]["accuracy"], sum(sps) / len(sps))
methods = ["none", "codats", "codats_ws", "upper"]
print("| sources → target | " + " | ".join(methods) + " |")
print("|---|" + "---|" * len(methods))
for (s, t), v in rows.items():
    cells = [f"{100*v[m][0]:.1f} ({100*v[m][1]:.1f})" if m in v else "–" for m in methods]
    print(f"| {s} → {t} | " + " | ".join(cells) + " |")
print()
print("steps/s per run (mean over evaluations): " + ", ".join(
    f"{s}→{t} {m} {v[m][2]:.2f}" for (s, t), v in rows.items() for m in methods if m in v))
PY
