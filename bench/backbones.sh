#!/usr/bin/env bash
# The built-in backbones side by side (README, "Which backbone"): every backbone x taps x input
# size in CONFIGS, 60 epochs, on MVTec bottle and leather (the shared subsets) and on a
# Magnetic-tile subset (bench/magnetic_tile_subset.py); per run the training time, the inference
# time per image (end to end from the file, fresh cache, the model loaded once) and `eval --json`.
# Then `python3 bench/backbones_table.py OUT` prints the table.
# Usage: bench/backbones.sh [OUT_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/contrario-backbones}
EPOCHS=${2:-60}
BIN=$PWD/target/release/contrario
cargo build --release -q
mkdir -p "$OUT"
[ -f "$OUT/mvtec/project.ron" ] || $BIN import --project "$OUT/mvtec" --format mvtec ../shared/data/mvtec_ad >/dev/null
if [ ! -f "$OUT/mt/project.ron" ]; then
  python3 bench/magnetic_tile_subset.py ../shared/data/magnetic_tile "$OUT/mt-data"
  $BIN import --project "$OUT/mt" --format mvtec "$OUT/mt-data" >/dev/null
fi
CONFIGS=${CONFIGS:-"efficientnet-lite0:4:256 efficientnet-lite0:8:256 efficientnet-lite1:4:256 efficientnet-lite1:8:256 efficientnet-lite2:4:256 efficientnet-lite2:8:256 efficientnet-lite0:4:320 efficientnet-lite1:4:320"}
for cfg in $CONFIGS; do
  IFS=: read -r B T S <<<"$cfg"
  M="${B#efficientnet-}-s$T-$S"
  for pc in mvtec:leather mvtec:bottle mt:magnetic_tile; do
    P="$OUT/${pc%%:*}"
    C="${pc#*:}"
    R="$OUT/$M.$C"
    [ -f "$R.eval.json" ] && continue
    echo "== $M on $C"
    /usr/bin/time -f "%e" -o "$R.train.time" $BIN train --project "$P" --model "$M" --category "$C" \
      --epochs "$EPOCHS" --builtin "$B" --taps "$T" --input-size "$S" >"$R.train.json" 2>"$R.train.log"
    rm -rf "$P/cache/$M/$C"
    /usr/bin/time -f "%e" -o "$R.infer.time" $BIN infer --project "$P" --model "$M" --category "$C" >"$R.infer.jsonl"
    # The same again from the cache: the fixed costs (process, libtorch, model) to subtract.
    /usr/bin/time -f "%e" -o "$R.cached.time" $BIN infer --project "$P" --model "$M" --category "$C" >/dev/null
    $BIN eval --project "$P" --model "$M" --category "$C" --json >"$R.eval.json"
  done
done
python3 bench/backbones_table.py "$OUT"
