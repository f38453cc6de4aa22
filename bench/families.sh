#!/usr/bin/env bash
# The two detector families side by side in one run (README, "Which detector"): U-Flow and
# PatchCore, each with `contrario train`'s defaults, on the demo project's three categories (a
# copy, its shipped models left out, so both train here), the shared MVTec bottle and leather and
# a Magnetic-tile subset (bench/magnetic_tile_subset.py). Per run: the training time, the
# inference time per image (end to end from the file, fresh cache, the model loaded once; the
# same run again from the cache is the fixed cost subtracted) and `eval --json`. Then the scaling
# runs: Magnetic-tile with 15, 30, 60, 119 and 238 training normals against the same test images, to
# show how training and inference grow with the training set. `python3 bench/families_table.py
# OUT` prints the tables. Usage: bench/families.sh [OUT_DIR] [EPOCHS]; FAMILIES="uflow" runs one
# family only, SCALING=0 skips the scaling runs (ONLY="238" runs only those sizes), RETIME=1 measures the inference times again of
# the models already there (both families in one run, nothing retrained).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/contrario-families}
EPOCHS=${2:-60}
FAMILIES=${FAMILIES:-uflow patchcore}
BIN=$PWD/target/release/contrario
cargo build --release -q
mkdir -p "$OUT"
if [ ! -f "$OUT/demo/project.ron" ]; then
  cp -r projects/demo "$OUT/demo" && rm -rf "$OUT/demo/models" "$OUT/demo/cache"
fi
[ -f "$OUT/mvtec/project.ron" ] || $BIN import --project "$OUT/mvtec" --format mvtec ../shared/data/mvtec_ad >/dev/null
subset() { # NAME TRAIN_EVERY DEFECT_EVERY
  [ -f "$OUT/$1/project.ron" ] && return
  python3 bench/magnetic_tile_subset.py ../shared/data/magnetic_tile "$OUT/$1-data" "$2" "$3" >/dev/null
  $BIN import --project "$OUT/$1" --format mvtec "$OUT/$1-data" >/dev/null
}
subset mt 12 1
SIZES=${ONLY:-15 30 60 119 238}
every() { case $1 in 15) echo 48 ;; 30) echo 24 ;; 60) echo 12 ;; 119) echo 6 ;; 238) echo 3 ;; esac; }
if [ "${SCALING:-1}" != 0 ]; then
  for n in $SIZES; do subset "mt-n$n" "$(every "$n")" 4; done
fi
run() { # PROJECT CATEGORY FAMILY TAG
  local P="$OUT/$1" C=$2 F=$3 M=$3-l2 R="$OUT/$4.$3" fresh=1
  if [ -f "$R.eval.json" ]; then
    [ "${RETIME:-0}" = 1 ] || return 0
    fresh=0
  fi
  echo "== $F on $4"
  if [ $fresh = 1 ]; then
    /usr/bin/time -f "%e" -o "$R.train.time" $BIN train --project "$P" --model "$M" --category "$C" \
      --detector "$F" --epochs "$EPOCHS" >"$R.train.json" 2>"$R.train.log"
  fi
  rm -rf "$P/cache/$M/$C"
  /usr/bin/time -f "%e" -o "$R.infer.time" $BIN infer --project "$P" --model "$M" --category "$C" >"$R.infer.jsonl"
  /usr/bin/time -f "%e" -o "$R.cached.time" $BIN infer --project "$P" --model "$M" --category "$C" >/dev/null
  if [ $fresh = 1 ]; then
    $BIN eval --project "$P" --model "$M" --category "$C" --json >"$R.eval.json"
  fi
  # The same model without its out-of-sample offset: the level moved by it (bench/promise_table.py).
  [ -f "$R.no-offset.eval.json" ] || $BIN eval --project "$P" --model "$M" --category "$C" --json \
    --threshold "$(python3 bench/level_offset.py "$R.eval.json" "$C")" >"$R.no-offset.eval.json"
}
for pc in demo:fabric demo:leather demo:wood mvtec:bottle mvtec:leather mt:magnetic_tile; do
  for F in $FAMILIES; do run "${pc%%:*}" "${pc#*:}" "$F" "${pc%%:*}-${pc#*:}"; done
done
if [ "${SCALING:-1}" != 0 ]; then
  for n in $SIZES; do
    for F in $FAMILIES; do run "mt-n$n" magnetic_tile "$F" "scaling-$n"; done
  done
fi
python3 bench/families_table.py "$OUT"
