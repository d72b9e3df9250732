#!/usr/bin/env bash
# One command for a machine with a GPU: build with the CUDA kernels, run every test (the GPU
# ones included), benchmark on the GPU (every case, float32 with and without TF32, float16,
# bfloat16), and save everything with the machine's description.
#
#   bash scripts/gpu_check.sh [RESULTS_DIR]      (default: benchmarks/results)
#
# Uses .venv/ like the other commands; where python3 already has torch and no package index
# is reachable, run it with FASTALEX_VENV=none.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
DIR="${1:-$ROOT/benchmarks/results}"
mkdir -p "$DIR"
REPORT="$DIR/gpu-check-$STAMP.txt"
export FASTALEX_CUDA=1
status=0
{
  echo "# fastalex GPU check, $STAMP"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "nvidia-smi failed"
  nvcc --version | tail -2
} > "$REPORT" 2>&1

PYBIN="$(bash scripts/setup_env.sh 2>>"$REPORT" | tail -1)" || { echo "build failed" | tee -a "$REPORT"; exit 1; }
"$PYBIN" - >> "$REPORT" 2>&1 <<'PY'
import torch, fastalex
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("GPU", torch.cuda.get_device_name(), "| capability", torch.cuda.get_device_capability())
print("fastalex", fastalex.__version__, "| CUDA kernels built:", fastalex.built_with_cuda())
PY
# The ahead-of-time Triton report first: a test checks it.
"$PYBIN" scripts/triton_resources.py --arch 90 --json build/triton_resources.json >> "$REPORT" 2>&1 || status=1
# The CUDA kernels' SASS (HMMA in the tensor-core main loops, no local memory, static bounds).
"$PYBIN" scripts/sass_report.py --auto --json build/sass_report.json >> "$REPORT" 2>&1 || status=1
"$PYBIN" -m pytest -ra -q tests 2>&1 | tee -a "$REPORT" | tail -5 || status=1
# One benchmark run per dtype (each writes its own results files), so no single command runs long.
for dtype in float32 float32+tf32 float16 bfloat16; do
  "$PYBIN" benchmarks/run.py --device cuda --dtypes "$dtype" --out "$DIR" 2>&1 | tee -a "$REPORT" || status=1
done
echo "report: $REPORT"
exit $status
