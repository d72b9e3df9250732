#!/usr/bin/env bash
# One command for a machine with a GPU: build with the CUDA kernels, run every test (the GPU
# ones included), benchmark on the GPU (every case in float32 with and without TF32, float16
# and bfloat16; the networks at batch 1, 16 and 128), and save everything with the machine's
# description (GPU, driver, CUDA, cuDNN, torch, triton, torch-tensorrt versions), with a profile
# of the eager forward's host time at batch 1 (benchmarks/host_profile.py).
#
#   bash scripts/gpu_check.sh [RESULTS_DIR]      (default: benchmarks/results)
#
# Time: the check is meant to end within FASTALEX_GPU_CHECK_SECONDS (default 570 s, under ten
# minutes) of its start. The build and the Triton and SASS reports take what they take, the
# tests at most half of what is left (FASTALEX_GPU_TESTS=gpu: only the tests a GPU adds to
# CI's); the benchmark gets what is left: one run per dtype (each writes its own results files),
# each with `--budget` = an equal share of the time left (at least 30 s: past the deadline each
# run still times the networks) and `--compile networks` (torch.compile in max-autotune for the
# networks, where the budget covers a compilation; the per-layer torch.compile comparison is
# left to `bash scripts/bench.sh --device cuda`). Within a run the cheap providers go over every
# case first (layers, then the networks at batch 128, 1, 16), the compilations after; a hard
# stop at the end of its budget still writes the rows finished; `timeout` stops a run 45 s past
# its budget (SIGINT: it too writes what finished) if that fails. FASTALEX_GPU_CHECK_SECONDS=0 drops every limit: the full
# benchmark, every provider on every case (far longer: see README, Benchmarks).
#
# Uses .venv/ like the other commands; where python3 already has torch and no package index
# is reachable, run it with FASTALEX_VENV=none.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
DIR="${1:-$ROOT/benchmarks/results}"
LIMIT="${FASTALEX_GPU_CHECK_SECONDS:-570}"
SECONDS=0
mkdir -p "$DIR"
REPORT="$DIR/gpu-check-$STAMP.txt"
export FASTALEX_CUDA=1 PYTHONUNBUFFERED=1
status=0
phase() { echo "== $1 (at ${SECONDS} s of ${LIMIT} s)" | tee -a "$REPORT"; }
{
  echo "# fastalex GPU check, $STAMP"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "nvidia-smi failed"
  nvcc --version | tail -2
} > "$REPORT" 2>&1

phase "build"
PYBIN="$(bash scripts/setup_env.sh 2>>"$REPORT" | tail -1)" || { echo "build failed" | tee -a "$REPORT"; exit 1; }
"$PYBIN" - >> "$REPORT" 2>&1 <<'PY'
import importlib.metadata, torch, fastalex
try:
    import triton
    triton_version = triton.__version__
except ImportError:
    triton_version = "not installed"
try:
    trt = importlib.metadata.version("torch_tensorrt")
except importlib.metadata.PackageNotFoundError:
    trt = "not installed"
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version(),
      "| triton", triton_version, "| torch-tensorrt", trt)
print("GPU", torch.cuda.get_device_name(), "| capability", torch.cuda.get_device_capability())
print("fastalex", fastalex.__version__, "| CUDA kernels built:", fastalex.built_with_cuda(),
      "| fastalex.cuda_graph:", hasattr(fastalex, "cuda_graph"))
PY
# The ahead-of-time Triton report first: a test checks it.
phase "Triton kernels, ahead of time for sm_90"
"$PYBIN" scripts/triton_resources.py --arch 90 --json build/triton_resources.json >> "$REPORT" 2>&1 || status=1
# The CUDA kernels' SASS (HMMA in the tensor-core main loops, no local memory, static bounds).
phase "CUDA kernels' SASS"
"$PYBIN" scripts/sass_report.py --auto --json build/sass_report.json >> "$REPORT" 2>&1 || status=1
# FASTALEX_GPU_TESTS=gpu runs only what a GPU adds to CI's run: the tests on CUDA tensors and
# the Triton kernels compiled for the GPU (CI runs the rest on every commit). Under a time
# limit the tests get at most half the time left; SIGINT makes pytest print what finished.
if [[ "${FASTALEX_GPU_TESTS:-all}" == "gpu" ]]; then
  test_args=(-k "cuda or gpu or triton")
else
  test_args=()
fi
# -v names every test in the report (a crash's test is then the last one named). With
# pytest-xdist installed the tests run in FASTALEX_GPU_TEST_WORKERS processes (default 4; 0: one),
# sharing the GPU: on the first H200 run one process ran about one test a second (167 of the 557
# GPU tests in 171 s). A worker that crashes is reported by name while the others go on.
test_cmd=("$PYBIN" -m pytest -ra -v tests "${test_args[@]}")
workers="${FASTALEX_GPU_TEST_WORKERS:-4}"
if [[ "$workers" != "0" ]] && "$PYBIN" -c "import xdist" 2>/dev/null; then
  test_cmd+=(-n "$workers")  # a count, or xdist's own "auto" / "logical"
fi
if (( LIMIT > 0 )); then
  test_share=$(( (LIMIT - SECONDS) / 2 ))
  (( test_share < 60 )) && test_share=60
  phase "tests ${test_args[*]} (at most ${test_share} s)"
  test_cmd=(timeout -s INT -k 15 "$test_share" "${test_cmd[@]}")
else
  phase "tests ${test_args[*]}"
fi
"${test_cmd[@]}" >> "$REPORT" 2>&1
test_rc=$?
# The console gets the summary (failures, errors, crashed workers) and the counts; the report has
# it all (-ra prints no summary section when nothing failed or was skipped).
sed -n '/short test summary info/,$p' "$REPORT" | tail -40
tail -1 "$REPORT"
if (( test_rc == 124 )); then
  echo "tests stopped at their share of the time: the summary above lists what finished" | tee -a "$REPORT"
fi
(( test_rc == 0 )) || status=1

# Where the eager forward's host time goes at batch 1 (the third GPU run found paper GoogLeNet's
# eager forward 3.9 ms against 1.0 ms from a CUDA graph): benchmarks/host_profile.py, which
# writes each network's section as it finishes. Under a time limit it gets at most a tenth of
# the time left (at most 90 s, at least 20 s).
profile_share=90
if (( LIMIT > 0 )); then
  profile_share=$(( (LIMIT - SECONDS) / 10 ))
  (( profile_share > 90 )) && profile_share=90
  (( profile_share < 20 )) && profile_share=20
fi
phase "host profile, batch 1, float16 (at most ${profile_share} s)"
timeout -s INT -k 10 "$profile_share" "$PYBIN" benchmarks/host_profile.py --device cuda --dtype float16 \
  --out "$DIR/host-profile-$STAMP.txt" > /dev/null 2>> "$REPORT"
profile_rc=$?
if (( profile_rc == 124 || profile_rc == 130 || profile_rc == 137 )); then
  echo "host profile stopped at its ${profile_share} s: $DIR/host-profile-$STAMP.txt has the networks that finished" | tee -a "$REPORT"
elif (( profile_rc != 0 )); then
  echo "host profile failed (exit $profile_rc; its error is in this report)" | tee -a "$REPORT"
fi

# One benchmark run per dtype, each within its share of the time left.
# FASTALEX_GPU_CHECK_DTYPES (a comma list) narrows them when the time is short.
IFS=, read -r -a runs <<< "${FASTALEX_GPU_CHECK_DTYPES:-float32,float32+tf32,float16,bfloat16}"
for i in "${!runs[@]}"; do
  dtype="${runs[$i]}"
  if (( LIMIT > 0 )); then
    share=$(( (LIMIT - SECONDS - 15) / (${#runs[@]} - i) ))  # 15 s kept for the closing lines
    (( share < 30 )) && share=30
    phase "benchmark $dtype (budget ${share} s)"
    timeout -s INT -k 15 $(( share + 45 )) \
      "$PYBIN" benchmarks/run.py --device cuda --dtypes "$dtype" --out "$DIR" --budget "$share" --compile networks \
      2>&1 | tee -a "$REPORT" || status=1
  else
    phase "benchmark $dtype (no time limit)"
    "$PYBIN" benchmarks/run.py --device cuda --dtypes "$dtype" --out "$DIR" 2>&1 | tee -a "$REPORT" || status=1
  fi
done
phase "done"
echo "report: $REPORT"
exit $status
