#!/usr/bin/env bash
# How outlines are drawn (README): each category's default U-Flow evaluated with its regions as
# tested and as outlined by evidence (`eval --outline`), in one run on the same models: the demo
# project (the models it ships), the shared MVTec bottle and leather, and a Magnetic-tile subset
# (bench/magnetic_tile_subset.py), trained here with the defaults. Then
# `python3 bench/outline_table.py OUT` prints the table.
# Usage: bench/outline.sh [OUT_DIR] [EPOCHS]; FAMILY=patchcore does the same for PatchCore
# (model patchcore-l2, the demo's categories trained here too).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/contrario-outline}
EPOCHS=${2:-60}
BIN=$PWD/target/release/contrario
FAMILY=${FAMILY:-uflow}
M=$FAMILY-l2
cargo build --release -q
mkdir -p "$OUT"
if [ ! -d "$OUT/demo" ]; then cp -r projects/demo "$OUT/demo"; rm -rf "$OUT/demo/cache"; fi
[ -f "$OUT/mvtec/project.ron" ] || $BIN import --project "$OUT/mvtec" --format mvtec ../shared/data/mvtec_ad >/dev/null
if [ ! -f "$OUT/mt/project.ron" ]; then
  python3 bench/magnetic_tile_subset.py ../shared/data/magnetic_tile "$OUT/mt-data"
  $BIN import --project "$OUT/mt" --format mvtec "$OUT/mt-data" >/dev/null
fi
trained="mvtec:bottle mvtec:leather mt:magnetic_tile"
[ "$FAMILY" = uflow ] || trained="demo:fabric demo:leather demo:wood $trained"
for pc in $trained; do
  P="$OUT/${pc%%:*}"
  C="${pc#*:}"
  if [ ! -f "$P/models/$M/$C/model.ron" ]; then
    /usr/bin/time -f "$C training: %e s" $BIN train --project "$P" --model "$M" --category "$C" \
      --detector "$FAMILY" --epochs "$EPOCHS" >/dev/null
  fi
done
for p in demo mvtec mt; do
  for o in tested evidence; do
    $BIN eval --project "$OUT/$p" --model "$M" --outline "$o" --json >"$OUT/$p.$o.json"
  done
done
python3 bench/outline_table.py "$OUT"
