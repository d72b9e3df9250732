#!/usr/bin/env bash
# The README's main command: set up .venv, build, compile the Triton kernels ahead of time for
# their resource table, read the CUDA kernels' SASS, then run the benchmark (benchmarks/run.py).
# Extra arguments go to the benchmark (e.g. bash scripts/bench.sh --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYBIN="$(bash "$ROOT/scripts/setup_env.sh" | tail -1)"
cd "$ROOT"
echo "== Triton kernels, ahead of time for sm_90" >&2
"$PYBIN" scripts/triton_resources.py --arch 90 --json build/triton_resources.json > build/triton_resources.txt 2>&1 \
  || { cat build/triton_resources.txt >&2; exit 1; }
# The SASS report the benchmark's "Static bounds (from SASS, not measured)" section renders
# (its full table: build/sass_report.txt); its last line is the summary or the no-CUDA notice.
echo "== CUDA kernels' SASS (cuobjdump; main loops, local memory, tensor-core bounds)" >&2
if "$PYBIN" scripts/sass_report.py --auto --json build/sass_report.json > build/sass_report.txt 2>&1; then
  tail -1 build/sass_report.txt >&2
else
  cat build/sass_report.txt >&2
  exit 1
fi
exec "$PYBIN" benchmarks/run.py "$@"
