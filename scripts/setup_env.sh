#!/usr/bin/env bash
# Creates (or reuses) the virtual environment at .venv/, installs the pinned dependencies
# once, builds fastalex in place and prints the CUDA kernels' resource usage.
# Sourced by the README's commands; honours FASTALEX_CUDA=auto|0|1 and TORCH_CUDA_ARCH_LIST.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
# torch pulls its CUDA runtime wheels (nvidia-*) and triton; ninja drives the build.
DEPS=(torch==2.14.1 triton==3.8.0 numpy pytest ninja setuptools wheel nvidia-cuda-cuobjdump)
STAMP="$VENV/.fastalex-deps-$(printf '%s\n' "${DEPS[@]}" | sha1sum | cut -c1-12)"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "== creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [[ ! -f "$STAMP" ]]; then
  echo "== installing ${DEPS[*]}"
  mkdir -p build
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${DEPS[@]}" > build/pip.log 2>&1; then
    grep -v "^WARNING: Location" build/pip.log | tail -30
    echo "installing the dependencies failed; full log: build/pip.log" >&2
    exit 1
  fi
  rm -f "$VENV"/.fastalex-deps-*
  touch "$STAMP"
fi

rm -f build/cuda_resources.json
echo "== building fastalex (FASTALEX_CUDA=${FASTALEX_CUDA:-auto})"
mkdir -p build
# --no-build-isolation: build against the torch in .venv instead of downloading another.
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-build-isolation --no-deps -v -e . \
    > build/build.log 2>&1; then
  grep -E "error|Error|FASTALEX" build/build.log | tail -40 || true
  echo "build failed; full log: build/build.log" >&2
  exit 1
fi
"$VENV/bin/python" -c "import fastalex; print('fastalex', fastalex.__version__, '| CUDA kernels built:', fastalex.built_with_cuda())"
if grep -q "ptxas info" build/build.log; then
  "$VENV/bin/python" scripts/cuda_resources.py build/build.log --json build/cuda_resources.json
fi
