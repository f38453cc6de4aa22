#!/usr/bin/env bash
# Photometric standardisation against images as they are (README, "Lighting"), on MVTec bottle
# and leather (the shared subsets) and a Magnetic-tile subset (bench/magnetic_tile_subset.py):
# per category and setting, a default training, then `eval --json` on the test images as they are
# and changed as a line's lighting drifts (darker 8 %, brighter 8 %, a warm cast: R +6 %, B -6 %;
# the training images untouched), and `review --json` with the ground truth as the only annotator
# (the label-issue finder on correct labels). `python3 bench/lighting_table.py OUT` prints the
# tables. DETECTOR (uflow, the default, or patchcore) picks the family; both can share OUT_DIR.
# SETTINGS="standardise" trains one lighting setting only. Usage: bench/lighting.sh [OUT_DIR] [EPOCHS] [DETECTOR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/contrario-lighting}
EPOCHS=${2:-60}
DETECTOR=${3:-uflow}
BIN=$PWD/target/release/contrario
cargo build --release -q
mkdir -p "$OUT"
# An MVTec-layout copy of DATA with the test images changed by convert's OPS (train and ground
# truth linked).
drifted() {
  local data=$1 out=$2; shift 2
  [ -d "$out" ] && return
  (cd "$data" && find -L . -type f) | while read -r f; do
    mkdir -p "$out/$(dirname "$f")"
    case "$f" in
      */test/*.png | */test/*.jpg) convert "$data/$f" "$@" "$out/$f" ;;
      *) ln -s "$(readlink -f "$data/$f")" "$out/$f" ;;
    esac
  done
}
[ -d "$OUT/mt-data" ] || python3 bench/magnetic_tile_subset.py ../shared/data/magnetic_tile "$OUT/mt-data" >/dev/null
mkdir -p "$OUT/mvtec-data"
for c in bottle leather; do [ -e "$OUT/mvtec-data/$c" ] || ln -s "$(readlink -f ../shared/data/mvtec_ad/$c)" "$OUT/mvtec-data/$c"; done
for set in mvtec mt; do
  drifted "$OUT/$set-data" "$OUT/$set-dark-data" -evaluate multiply 0.92
  drifted "$OUT/$set-data" "$OUT/$set-bright-data" -evaluate multiply 1.08
  drifted "$OUT/$set-data" "$OUT/$set-warm-data" -type TrueColor -channel R -evaluate multiply 1.06 -channel B -evaluate multiply 0.94 +channel
  for d in "" -dark -bright -warm; do
    [ -f "$OUT/$set$d/project.ron" ] || $BIN import --project "$OUT/$set$d" --format mvtec "$OUT/$set$d-data" >/dev/null
  done
done
for pc in mvtec:leather mvtec:bottle mt:magnetic_tile; do
  P=${pc%%:*}
  C=${pc#*:}
  for ph in ${SETTINGS:-as-is standardise}; do
    M=$DETECTOR-$ph
    # U-Flow's runs keep the names they had before PatchCore joined.
    if [ "$DETECTOR" = uflow ]; then R="$OUT/$C.$ph"; else R="$OUT/$C.$DETECTOR-$ph"; fi
    if [ ! -f "$R.train.time" ]; then
      echo "== $ph on $C"
      /usr/bin/time -f "%e" -o "$R.train.time" $BIN train --project "$OUT/$P" --model "$M" --category "$C" \
        --epochs "$EPOCHS" --photometric "$ph" --detector "$DETECTOR" >"$R.train.json" 2>"$R.train.log"
    fi
    for d in "" -dark -bright -warm; do
      E="$R${d:-.asis-light}.eval.json"
      [ -f "$E" ] && continue
      if [ -n "$d" ]; then
        rm -rf "$OUT/$P$d/models/$M" && mkdir -p "$OUT/$P$d/models" && cp -r "$OUT/$P/models/$M" "$OUT/$P$d/models/$M"
      fi
      $BIN eval --project "$OUT/$P$d" --model "$M" --category "$C" --json >"$E"
      # Without the model's out-of-sample offset (bench/promise_table.py).
      $BIN eval --project "$OUT/$P$d" --model "$M" --category "$C" --json \
        --threshold "$(python3 bench/level_offset.py "$E" "$C")" >"${E%.eval.json}.no-offset.eval.json"
    done
    [ -f "$R.review.json" ] || $BIN review --project "$OUT/$P" --model "$M" --limit 100000 >"$R.review.json"
  done
done
python3 bench/lighting_table.py "$OUT"
