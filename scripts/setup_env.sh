#!/usr/bin/env bash
# Creates (or reuses) the virtual environment at .venv/, installs the pinned dependencies
# once, builds fastalex in place and prints the CUDA kernels' resource usage.
# Used by the README's commands. Environment:
#   FASTALEX_CUDA=auto|0|1   build the CUDA kernels: if nvcc is found / never / or fail
#   TORCH_CUDA_ARCH_LIST     default "8.0;9.0"
#   FASTALEX_VENV=none       use the current python3 as it is (it must already have torch,
#                            setuptools and ninja), e.g. on a machine without a package index
# Prints the path of the Python it set up as its last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p build
# torch pulls its CUDA runtime wheels (nvidia-*) and triton; ninja drives the build;
# torchvision is a test dependency (its models are the reference for the torchvision variants);
# tqdm and matplotlib serve the benchmark and fastalex.train; scikit-learn ships the scanned
# digits that fastalex.train.make_dataset turns into a small ImageFolder (its learning test).
DEPS=(torch==2.14.1 torchvision==0.29.1 triton==3.8.0 numpy pytest ninja setuptools wheel tqdm matplotlib scikit-learn)

if [[ "${FASTALEX_VENV:-}" == "none" ]]; then
  PYBIN="$(command -v python3)"
  echo "== using $PYBIN as it is ($("$PYBIN" -c 'import torch; print("torch", torch.__version__)'))" >&2
else
  VENV="$ROOT/.venv"
  PYBIN="$VENV/bin/python"
  STAMP="$VENV/.fastalex-deps-$(printf '%s\n' "${DEPS[@]}" | sha1sum | cut -c1-12)"
  if [[ ! -x "$PYBIN" ]]; then
    echo "== creating $VENV" >&2
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  if [[ ! -f "$STAMP" ]]; then
    echo "== installing ${DEPS[*]}" >&2
    if ! "$PYBIN" -m pip install -q --disable-pip-version-check "${DEPS[@]}" > build/pip.log 2>&1; then
      grep -v "^WARNING: Location" build/pip.log | tail -30 >&2
      echo "installing the dependencies failed; full log: build/pip.log" >&2
      exit 1
    fi
    rm -f "$VENV"/.fastalex-deps-*
    touch "$STAMP"
  fi
fi

# Rebuild only when the sources or the build settings changed (pip's editable builds start
# from scratch every time).
BUILD_KEY="$( (cat setup.py pyproject.toml; find csrc -type f | sort | xargs cat; \
  echo "FASTALEX_CUDA=${FASTALEX_CUDA:-auto} ARCH=${TORCH_CUDA_ARCH_LIST:-} PY=$PYBIN") | sha1sum | cut -c1-16)"
if [[ -f "build/.built-$BUILD_KEY" ]] && ls fastalex/_C*.so fastalex/_emu*.so > /dev/null 2>&1; then
  echo "== fastalex is already built from these sources (build/build.log)" >&2
else
  rm -f build/cuda_resources.json build/.built-*
  echo "== building fastalex (FASTALEX_CUDA=${FASTALEX_CUDA:-auto})" >&2
  # --no-build-isolation: build against the installed torch instead of downloading another.
  if ! "$PYBIN" -m pip install --disable-pip-version-check --no-build-isolation --no-deps -v -e . \
      > build/build.log 2>&1; then
    grep -E "error|Error|setup.py:" build/build.log | tail -40 >&2 || true
    echo "build failed; full log: build/build.log" >&2
    exit 1
  fi
  touch "build/.built-$BUILD_KEY"
fi
"$PYBIN" -c "import fastalex; print('fastalex', fastalex.__version__, '| CUDA kernels built:', fastalex.built_with_cuda())" >&2
if grep -q "ptxas info" build/build.log; then
  # Fails the set-up when a kernel spills or misses an architecture.
  "$PYBIN" scripts/cuda_resources.py build/build.log --json build/cuda_resources.json >&2
fi
echo "$PYBIN"
