#!/usr/bin/env bash
# Prove that the .deb `make package` built is self-contained: unpacked into a scratch root with
# `dpkg -x`, its binary runs with an empty HOME, no virtual environment and nothing on the library
# path: `contrario info`, a detection and a U-Flow inference on a demo image, and the window on
# the demo under Xvfb; `ldd` resolves every library inside the package or the base system, and
# the binary names no path of the build machine. Ends with "N passed, 0 failed".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEB=$(ls "$ROOT"/target/package/contrario_*_amd64.deb | head -1)
SCRATCH=$(mktemp -d /tmp/contrario-package-XXXXXX)
XVFB_PID=""
cleanup() {
  [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

dpkg -x "$DEB" "$SCRATCH/root"
PKG="$SCRATCH/root"
BIN="$PKG/usr/bin/contrario"
mkdir -p "$SCRATCH/home" "$SCRATCH/work"
# Nothing of the developer's environment: an empty HOME, a bare PATH, no LD_LIBRARY_PATH.
run() { (cd "$SCRATCH/work" && env -i HOME="$SCRATCH/home" PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"); }

echo "== $(basename "$DEB"): $(du -m "$DEB" | cut -f1) MB, $(du -sm "$PKG/usr" | cut -f1) MB unpacked"

# Every library the binary and the bundled libraries load resolves inside the package or to the
# base system (glibc, libstdc++, libgcc), never to a Python environment.
outside=""
for f in "$PKG/usr/lib/contrario/contrario" "$PKG"/usr/lib/contrario/lib/*; do
  while read -r line; do
    case "$line" in
    *"not found"*) outside="$outside\n$(basename "$f"): $line" ;;
    *"=> /"*)
      path=${line#*=> }
      path=${path%% (*}
      case "$path" in
      "$PKG"/*) ;;
      /lib/x86_64-linux-gnu/* | /usr/lib/x86_64-linux-gnu/* | /lib64/*) ;;
      *) outside="$outside\n$(basename "$f"): $line" ;;
      esac
      ;;
    esac
  done < <(env -i PATH=/usr/bin:/bin ldd "$f")
done
if [ -z "$outside" ]; then ok "ldd: every library inside the package or the base system"; else bad "ldd:$(printf "$outside")"; fi

if grep -q -a -e "$(readlink -f "$ROOT/.libtorch")" -e "/.cache/contrario" -e "$ROOT/projects" "$PKG/usr/lib/contrario/contrario"; then
  bad "the binary names a path of the build machine"
else
  ok "the binary names no path of the build machine"
fi
runpath=$(readelf -d "$PKG/usr/lib/contrario/contrario" | grep -E "RUNPATH|RPATH" || true)
case "$runpath" in *'[$ORIGIN/lib]'*) ok "rpath \$ORIGIN/lib" ;; *) bad "rpath: $runpath" ;; esac

if run "$BIN" info --json >"$SCRATCH/info.json" 2>"$SCRATCH/info.err" &&
  python3 - "$SCRATCH/info.json" "$PKG" <<'EOF'; then
import json, sys
v = json.load(open(sys.argv[1]))
assert v["torch"]["libtorch_version"].startswith("2.13.0"), v["torch"]
found = v["builtin_backbones"]
assert [b["name"] for b in found] == ["efficientnet-lite2", "efficientnet-lite0", "efficientnet-lite1"], found
for b in found:
    assert b["path"].startswith(sys.argv[2]), b
EOF
  ok "contrario info: libtorch 2.13.0 and the three built-in backbones from the package"
else
  bad "contrario info: $(cat "$SCRATCH/info.json" "$SCRATCH/info.err")"
fi

DEMO="$PKG/usr/share/contrario/demo"
if run "$BIN" detect --image "$DEMO/images/leather/test/hole/004.png" --out "$SCRATCH/detect" >"$SCRATCH/detect.log" 2>&1 &&
  [ -s "$SCRATCH/detect/log_nfa.npy" ]; then
  ok "a training-free detection on a demo image"
else
  bad "detect: $(cat "$SCRATCH/detect.log")"
fi

cp -r "$DEMO" "$SCRATCH/demo"
if run "$BIN" infer --project "$SCRATCH/demo" --model uflow-l2 --category leather >"$SCRATCH/infer.jsonl" 2>"$SCRATCH/infer.err" &&
  grep -q '"image":"leather/test/hole/004"' "$SCRATCH/infer.jsonl" &&
  python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; h=[x for x in r if x["image"]=="leather/test/hole/004"][0]; assert h["regions"]>=1 and h["min_log10_nfa"]<0, h' "$SCRATCH/infer.jsonl"; then
  ok "a U-Flow inference with the demo's shipped model finds the planted hole"
else
  bad "infer: $(cat "$SCRATCH/infer.jsonl" "$SCRATCH/infer.err")"
fi

# Live inspection with the packaged binary: an image lands in a watched folder and is scored.
mkdir -p "$SCRATCH/camera"
cp "$DEMO/images/leather/test/hole/004.png" "$SCRATCH/camera/part.png"
if run timeout 120 "$BIN" watch --project "$SCRATCH/demo" --folder "$SCRATCH/camera" --category leather --stop-after 1 >"$SCRATCH/watch.jsonl" 2>"$SCRATCH/watch.err" &&
  python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); assert r["flagged"] and r["regions"], r' "$SCRATCH/watch.jsonl"; then
  ok "contrario watch scores an image that lands in a folder (flagged)"
else
  bad "watch: $(cat "$SCRATCH/watch.jsonl" "$SCRATCH/watch.err")"
fi

# What `add-cuda` leaves (`cuda/torch-lib` beside the binary, PyPI's torch 2.13.0 with its CUDA
# libraries), simulated with this machine's environment of the same version: the package loads
# libtorch_cuda at start and still computes (on the CPU where, as here, there is no GPU).
mkdir -p "$PKG/usr/lib/contrario/cuda"
ln -s "$(readlink -f "$ROOT/.libtorch")/lib" "$PKG/usr/lib/contrario/cuda/torch-lib"
if run "$BIN" info --json >"$SCRATCH/cuda.json" 2>"$SCRATCH/cuda.err" &&
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["torch"]; assert "Ok" in (v["cuda_libraries"] or {}), v' "$SCRATCH/cuda.json" &&
  run "$BIN" detect --image "$DEMO/images/leather/test/hole/004.png" --out "$SCRATCH/detect-cuda" >"$SCRATCH/detect-cuda.log" 2>&1; then
  ok "with the CUDA libraries added, they load and a detection still runs ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["torch"]["device"])' "$SCRATCH/cuda.json"))"
else
  bad "with the CUDA libraries added: $(cat "$SCRATCH/cuda.json" "$SCRATCH/cuda.err" "$SCRATCH/detect-cuda.log" 2>/dev/null)"
fi
rm -rf "$PKG/usr/lib/contrario/cuda"

# The window, on the demo it finds beside itself, in a real X server.
if command -v Xvfb >/dev/null && command -v import >/dev/null; then
  display=:$((200 + RANDOM % 300))
  Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 &
  XVFB_PID=$!
  sleep 2
  (cd "$SCRATCH/work" && env -i HOME="$SCRATCH/home" PATH=/usr/bin:/bin DISPLAY="$display" \
    WINIT_UNIX_BACKEND=x11 "$BIN" >"$SCRATCH/window.log" 2>&1) &
  APP_PID=$!
  sleep 15
  if kill -0 "$APP_PID" 2>/dev/null; then
    DISPLAY="$display" import -window root "$SCRATCH/window.png" 2>/dev/null || true
    colours=$(DISPLAY="$display" convert "$SCRATCH/window.png" -format %k info: 2>/dev/null || echo 0)
    kill "$APP_PID" 2>/dev/null || true
    if [ "${colours:-0}" -gt 1000 ]; then
      ok "the window opens on the demo ($colours colours on screen)"
    else
      bad "the window shows $colours colours: $(tail -5 "$SCRATCH/window.log")"
    fi
  else
    bad "the window closed: $(tail -20 "$SCRATCH/window.log")"
  fi
  kill "$XVFB_PID" 2>/dev/null || true
  XVFB_PID=""
else
  bad "Xvfb or ImageMagick missing (make setup installs them)"
fi

echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
