#!/usr/bin/env bash
# The README's main command: set up .venv, build, compile the Triton kernels ahead of time for
# their resource table, read the CUDA kernels' SASS, then run the benchmark (benchmarks/run.py).
# Extra arguments go to the benchmark (e.g. bash scripts/bench.sh --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYBIN="$(bash "$ROOT/scripts/setup_env.sh" | tail -1)"
cd "$ROOT"
# The CPU engines the networks are compared with (benchmarks/peers.py): optional, so a note, not a
# failure, where they cannot be installed (their columns then say "not installed").
if [[ "${FASTALEX_VENV:-}" != "none" ]] && ! "$PYBIN" -c "import onnxruntime, openvino, onnx" 2> /dev/null; then
  echo "== installing the CPU peers (onnxruntime, openvino, onnx)" >&2
  "$PYBIN" -m pip install -q --disable-pip-version-check onnxruntime==1.32.0 openvino==2026.4.1 onnx==1.23.2 \
    > build/pip-peers.log 2>&1 \
    || echo "note: onnxruntime / openvino could not be installed (build/pip-peers.log); the benchmark runs without them" >&2
fi
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
