#!/usr/bin/env bash
# The a contrario test's count, thesis against per-area, in one run on the same models: the demo
# project's leather, wood and fabric, the shared MVTec bottle and leather, Magnetic-tile. Each
# category's U-Flow is trained once (CLI defaults), then evaluated with each count
# (`eval --test-count`); bench/test_count_table.py prints the README's table from the JSON.
# Usage: bench/test_count.sh [OUT_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/contrario-test-count}
EPOCHS=${2:-60}
BIN=target/release/contrario
cargo build --release -q
mkdir -p "$OUT"
train() { # project category
  if [ ! -f "$1/models/uflow/$2/model.ron" ]; then
    /usr/bin/time -f "$2 training: %e s" $BIN train --project "$1" --model uflow --category "$2" --epochs "$EPOCHS"
  fi
}
evaluate() { # project name
  for count in thesis per-area; do
    $BIN eval --project "$1" --model uflow --test-count "$count" --json >"$OUT/$2.$count.json"
  done
}
if [ ! -d "$OUT/demo" ]; then cp -r projects/demo "$OUT/demo"; rm -rf "$OUT/demo/cache"; fi
for c in leather wood fabric; do train "$OUT/demo" "$c"; done
evaluate "$OUT/demo" demo
[ -f "$OUT/mvtec/project.ron" ] || $BIN import --project "$OUT/mvtec" --format mvtec ../shared/data/mvtec_ad >/dev/null
for c in bottle leather; do train "$OUT/mvtec" "$c"; done
evaluate "$OUT/mvtec" mvtec
[ -f "$OUT/mt/project.ron" ] || $BIN import --project "$OUT/mt" --format magnetic-tile ../shared/data/magnetic_tile >/dev/null
train "$OUT/mt" magnetic_tile
evaluate "$OUT/mt" mt
python3 bench/test_count_table.py "$OUT"
