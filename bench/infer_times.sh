#!/usr/bin/env bash
# Re-measure the inference time per image of every model bench/families.sh trained in OUT, both
# families in one run (nothing else on the machine), without retraining: for each, `infer` on a
# fresh cache and again from the cache (the fixed cost subtracted), as families.sh does; then
# `python3 bench/families_table.py OUT` prints the tables with these times.
# Usage: bench/infer_times.sh OUT
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:?usage: bench/infer_times.sh OUT}
BIN=$PWD/target/release/contrario
cargo build --release -q
for R in "$OUT"/*.eval.json; do
  R=${R%.eval.json} TAG=$(basename "$R")
  F=${TAG##*.} RUN=${TAG%.*}
  case $RUN in
    scaling-*) P=mt-n${RUN#scaling-} C=magnetic_tile ;;
    *) P=${RUN%%-*} C=${RUN#*-} ;;
  esac
  echo "== $F on $RUN"
  rm -rf "$OUT/$P/cache/$F-l2/$C"
  /usr/bin/time -f "%e" -o "$R.infer.time" $BIN infer --project "$OUT/$P" --model "$F-l2" --category "$C" >"$R.infer.jsonl"
  /usr/bin/time -f "%e" -o "$R.cached.time" $BIN infer --project "$OUT/$P" --model "$F-l2" --category "$C" >/dev/null
done
python3 bench/families_table.py "$OUT"
