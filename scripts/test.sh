#!/usr/bin/env bash
# The README's test command: set up .venv, build, run every test.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k lrn).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYBIN="$(bash "$ROOT/scripts/setup_env.sh" | tail -1)"
cd "$ROOT"
exec "$PYBIN" -m pytest -ra "$@" tests
