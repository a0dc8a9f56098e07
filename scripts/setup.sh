#!/usr/bin/env bash
# Install everything on a fresh machine: system packages for KenLM's estimation
# binaries, a venv with torch (CPU wheel) first, the pinned Python stack, and the
# lmplz/build_binary binaries built from the kenlm sdist.  Idempotent: a second
# run only checks stamps (a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
KENLM_VERSION=0.3.0
step() { printf '\n==> %s\n' "$*"; }

need=()
for pkg in g++ make cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev \
           libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev chromium libmagic1; do
  # chromium: the report's test; libmagic1: python-magic, which datatrove's WarcReader needs (make bench)
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  step "apt packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
stamp="$VENV/.setup-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  step "python packages (torch 2.13.0 CPU first, then the pinned stack; kenlm compiles ~2 min)"
  "$PIP" install -q --upgrade pip wheel setuptools
  "$PIP" install -q torch==2.13.0
  DS_BUILD_OPS=0 "$PIP" install -q -c constraints.txt -e ".[dev]"
  rm -f "$VENV"/.setup-*
  touch "$stamp"
fi

if [ ! -x "$VENV/bin/lmplz" ] || [ ! -x "$VENV/bin/build_binary" ]; then
  step "KenLM lmplz + build_binary from the kenlm $KENLM_VERSION sdist (~1 min)"
  tmp=$(mktemp -d)
  "$PIP" download -q --no-deps --no-build-isolation --no-binary kenlm "kenlm==$KENLM_VERSION" -d "$tmp"
  tar xzf "$tmp"/kenlm-*.tar.gz -C "$tmp"
  src=$(find "$tmp" -maxdepth 1 -type d -name 'kenlm-*' | head -1)
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  make -C "$src/build" -j"$(nproc)" lmplz build_binary >/dev/null
  cp "$src/build/bin/lmplz" "$src/build/bin/build_binary" "$VENV/bin/"
  rm -rf "$tmp"
fi
if ! "$VENV/bin/python" -c "import nltk; nltk.data.find('tokenizers/punkt_tab/english/')" 2>/dev/null; then
  step "NLTK punkt_tab (C4 counts sentences with it, as tfds)"
  "$VENV/bin/python" -m nltk.downloader -q punkt_tab >/dev/null 2>&1 \
    || echo "setup: warning: NLTK punkt_tab could not be downloaded (offline?); C4 will count sentences by rule" >&2
fi
"$VENV/bin/python" -c "import torch, apache_beam, fasttext, kenlm, sentencepiece, deepspeed, pyarrow" 2>/dev/null \
  || { echo "setup: the environment does not import; remove $VENV and run again" >&2; exit 1; }
echo "setup: ready ($VENV)"
