#!/usr/bin/env bash
# The README's main command: set up .venv, build, time every op against its torch reference.
# Extra arguments go to the benchmark (e.g. bash scripts/bench.sh --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYBIN="$(bash "$ROOT/scripts/setup_env.sh" | tail -1)"
cd "$ROOT"
exec "$PYBIN" benchmarks/ops_vs_torch.py "$@"
