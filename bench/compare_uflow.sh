#!/usr/bin/env bash
# Contrario's U-Flow against anomalib's, side by side in one run on this machine (CPU).
# Usage: bench/compare_uflow.sh [REPEAT]   (anomalib's venv: see bench/anomalib_uflow.py)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPEAT=${1:-20}
PY=${ANOMALIB_PYTHON:-$HOME/.cache/contrario/anomalib-venv/bin/python}
cargo build --release -q
ours=$(target/release/contrario bench uflow --repeat "$REPEAT")
theirs=$("$PY" bench/anomalib_uflow.py "$REPEAT" 32)
python3 - "$ours" "$theirs" <<'PY'
import json, sys
o, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
oi, ai = o["inference_seconds_per_image"], a["inference_seconds_per_image"]
print(json.dumps({"contrario": o, "anomalib": a}, indent=2))
print(f"inference per image: contrario {oi['total']*1e3:.1f} ms "
      f"(backbone {oi['backbone']*1e3:.1f}, flow {oi['flow']*1e3:.1f}, segmentation {oi['segmentation']*1e3:.1f}) | "
      f"anomalib {ai['total']*1e3:.1f} ms (backbone {ai['backbone']*1e3:.1f}, flow {ai['flow']*1e3:.1f}, map {ai['anomaly_map']*1e3:.1f}) "
      f"-> ratio {oi['total']/ai['total']:.2f}")
print(f"flow alone: ratio {oi['flow']/ai['flow']:.2f}")
ot, at = o["training"]["seconds_per_epoch"], a["training"]
print(f"epoch of 32 images: contrario {ot:.2f} s (features cached) | anomalib {at['seconds_per_epoch']:.2f} s "
      f"(backbone every batch), {at['seconds_per_epoch_flow_only']:.2f} s flow only "
      f"-> ratios {ot/at['seconds_per_epoch']:.2f} and {ot/at['seconds_per_epoch_flow_only']:.2f}")
PY
