#!/usr/bin/env bash
# The README's main command: set up .venv, build, compile the Triton kernels ahead of time for
# their resource table, then run the benchmark (benchmarks/run.py).
# Extra arguments go to the benchmark (e.g. bash scripts/bench.sh --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYBIN="$(bash "$ROOT/scripts/setup_env.sh" | tail -1)"
cd "$ROOT"
echo "== Triton kernels, ahead of time for sm_90" >&2
"$PYBIN" scripts/triton_resources.py --arch 90 --json build/triton_resources.json > build/triton_resources.txt 2>&1 \
  || { cat build/triton_resources.txt >&2; exit 1; }
exec "$PYBIN" benchmarks/run.py "$@"
