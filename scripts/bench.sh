#!/usr/bin/env bash
# The README's main command: set up .venv, build, time every op against its torch reference.
# Extra arguments go to the benchmark (e.g. bash scripts/bench.sh --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec .venv/bin/python benchmarks/ops_vs_torch.py "$@"
