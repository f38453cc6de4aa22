#!/usr/bin/env bash
# U-Flow quality on the shared MVTec AD subsets: import, train one model per category with the
# built-in backbone on CPU, evaluate.
# Usage: bench/uflow_mvtec.sh [EPOCHS] [PROJECT_DIR] [efficientnet-lite0|efficientnet-lite0-s8|efficientnet-lite2|...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EPOCHS=${1:-100}
P=${2:-/tmp/contrario-mvtec}
BUILTIN=${3:-efficientnet-lite0}
BIN=target/release/contrario
cargo build --release -q
$BIN import --project "$P" --format mvtec ../shared/data/mvtec_ad
for c in leather bottle; do
  /usr/bin/time -f "$c training: %e s" $BIN train --project "$P" --model uflow --category "$c" --epochs "$EPOCHS" --builtin "$BUILTIN"
done
$BIN eval --project "$P" --model uflow --json
