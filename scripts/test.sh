#!/usr/bin/env bash
# The README's test command: set up .venv, build, run every test.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k lrn).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYBIN="$(bash "$ROOT/scripts/setup_env.sh" | tail -1)"
cd "$ROOT"
# Every shipped Triton configuration compiled for sm_90 without a GPU: fails on any spill.
echo "== Triton kernels, ahead of time for sm_90" >&2
"$PYBIN" scripts/triton_resources.py --arch 90 --json build/triton_resources.json >&2
# The CUDA kernels' SASS: main-loop instruction mix, tensor-core bounds; fails on local memory
# or on a tensor-core (*_mma*) kernel without HMMA in its main loop. Without CUDA kernels in the
# build it prints a one-line notice (an error when FASTALEX_CUDA=1).
echo "== CUDA kernels' SASS (cuobjdump; main loops, local memory, tensor-core bounds)" >&2
"$PYBIN" scripts/sass_report.py --auto --json build/sass_report.json >&2
exec "$PYBIN" -m pytest -ra "$@" tests
