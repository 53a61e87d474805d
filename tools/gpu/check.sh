#!/usr/bin/env bash
# GPU check of soft_mm's SOFT attention op, for a CUDA machine that has only
# this repository, a CUDA build of torch, nvcc and pytest (no network, no
# OpenMMLab packages needed: soft_mm.ops and tests/test_ops use torch alone):
#   1. build soft_mm._ext with its CUDA kernels, in place;
#   2. run tests/test_ops with the CUDA tests required (not skipped), the
#      Triton kernels' tests (tests/test_ops/test_triton.py) compiled on the
#      GPU among them;
#   3. tools/analysis_tools/benchmark_ops.py on the GPU (C++ fused, Triton,
#      eager reference: time and error), and the C++ and Triton kernels under
#      compute-sanitizer (memcheck, racecheck), interleaved by value and each
#      time-boxed so that all of it ends within DEADLINE seconds.
# Results go to $OUT (default work_dirs/gpu_check): build.log, tests.log,
# sanitizer_*.log, benchmark_*.md.
#
#   bash tools/gpu/check.sh
#   QUICK=1 bash tools/gpu/check.sh      # benchmark at 224 only
#   DEADLINE=300 bash tools/gpu/check.sh # stop starting steps after ~300 s
#   DRY_RUN=1 bash tools/gpu/check.sh    # no GPU needed: print the steps and
#                                        # their time budgets, run nothing
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRIPT_START="${SCRIPT_START:-$(date +%s)}"
DEADLINE="${DEADLINE:-540}"
DRY_RUN="${DRY_RUN:-0}"
OUT="${OUT:-work_dirs/gpu_check}"
mkdir -p "$OUT"
# The python that holds torch: `python` where it exists, else `python3`.
PY="${PYTHON:-$(command -v python || command -v python3)}"
# soft_mm is not installed on the lent GPU image: import it from this checkout.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
tests_rc=0

if [ "$DRY_RUN" = 1 ]; then
  echo "== dry run: environment, build and tests skipped"
else

echo "== environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
command -v nvcc && nvcc --version | tail -n 1
"$PY" - <<'PY'
import sys
import torch
import pytest
print('python', sys.version.split()[0], 'torch', torch.__version__,
      'cuda', torch.version.cuda, 'pytest', pytest.__version__)
assert torch.cuda.is_available(), 'no CUDA device visible to torch'
print('device', torch.cuda.get_device_name(0),
      'capability %d.%d' % torch.cuda.get_device_capability(0))
import soft_mm
print('OpenMMLab:', 'missing (' + soft_mm.OPENMMLAB_MISSING + '): op only'
      if soft_mm.OPENMMLAB_MISSING else 'installed')
PY

echo "== build (in place, CUDA forced)"
ARCH="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$ARCH}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
start=$(date +%s)
FORCE_CUDA=1 "$PY" setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || {
  tail -n 50 "$OUT/build.log"; echo "build failed (see $OUT/build.log)"; exit 1; }
echo "built for sm_${TORCH_CUDA_ARCH_LIST} in $(( $(date +%s) - start ))s"
"$PY" -c "from soft_mm.ops import ext; \
assert 'cuda' in ext.ext_device_types(), ext.EXT_ERROR; \
print('kernels for', ext.ext_device_types())"

echo "== tests (CUDA tests required)"
# -rs lists skips; SOFT_MM_REQUIRE_CUDA turns the CUDA skips into failures.
set +e
SOFT_MM_REQUIRE_CUDA=1 "$PY" -m pytest tests/test_ops -q -rs \
  2>&1 | tee "$OUT/tests.log"
tests_rc=${PIPESTATUS[0]}
set -e
fi

# What follows is ordered by value and time-boxed: each step gets at most its
# own budget and never runs past DEADLINE seconds after the script started
# (default 540, inside the device tool's 600 s per call), so that a slow step
# cannot eat a short GPU lease; what ran before it is already in $OUT.
left() { echo $(( DEADLINE - ($(date +%s) - SCRIPT_START) )); }
budget() {  # budget SECONDS: min(SECONDS, time left - 10), or 0 under 20
  local want="$1" l
  l=$(( $(left) - 10 ))
  [ "$l" -lt "$want" ] && want="$l"
  if [ "$want" -lt 20 ]; then echo 0; else echo "$want"; fi
}
if [ "${QUICK:-0}" = 1 ]; then SIZES="224"; else SIZES="224 512 1024"; fi
bench() {  # bench NAME ARGS...: one benchmark_ops run into $OUT/NAME.md
  local name="$1" t; shift
  t=$(budget "${BENCH_TIMEOUT:-180}")
  if [ "$t" = 0 ]; then echo "== $name: skipped (deadline)"; return; fi
  echo "== benchmark $name (at most ${t}s)"
  if [ "$DRY_RUN" = 1 ]; then echo "would run: benchmark_ops.py $*"; return; fi
  timeout "$t" "$PY" tools/analysis_tools/benchmark_ops.py --device cuda \
    --out-dir "$OUT/$name" "$@" | tee "$OUT/$name.md" \
    || echo "<!-- $name: stopped (timeout ${t}s or error) -->"
}
sanitize() {  # sanitize TOOL IMPL: exercise_ops.py under compute-sanitizer
  local tool="$1" impl="${2:-ext}" t rc log
  log="$OUT/sanitizer_${tool}_${impl}.log"
  t=$(budget "${SANITIZER_TIMEOUT:-150}")
  if [ "$t" = 0 ]; then echo "== $tool $impl: skipped (deadline)"; return; fi
  if [ "$DRY_RUN" = 1 ]; then
    echo "== compute-sanitizer --tool $tool, $impl kernels (at most ${t}s)"
    echo "would run: exercise_ops.py --impl $impl"; return; fi
  if ! command -v compute-sanitizer >/dev/null 2>&1; then
    echo "== $tool: compute-sanitizer not found, skipped"; return; fi
  echo "== compute-sanitizer --tool $tool, $impl kernels (at most ${t}s)"
  set +e
  timeout "$t" compute-sanitizer --tool "$tool" --error-exitcode 3 \
    --print-limit 20 "$PY" tools/gpu/exercise_ops.py --impl "$impl" --check \
    > "$log" 2>&1
  rc=$?
  set -e
  echo "$tool $impl: exit $rc (0 clean, 3 errors found, 124 timed out):" \
    "$(grep -h 'ERROR SUMMARY' "$log" | tail -n 1)"
  if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then tail -n 5 "$log"; fi
  if [ "$rc" = 3 ]; then
    grep -m 20 -B 2 -A 8 'Invalid\|Race\|Hazard' "$log" || true
    if [ "$tests_rc" = 0 ]; then tests_rc=3; fi
  fi
}

# Every benchmark measurement runs in a fresh process (soft_mm.benchmark's
# protocol, ~3-4 s of start-up each on this image), so each step measures a
# chosen subset in one round; benchmark_ops.py --rounds N repeats it.
# The targets first: C++ fused vs Triton vs eager reference at SOFT-tiny's
# 224 shapes, batch 64, with the Newton-only table (Triton fused >= 3x eager
# fwd+bwd, Newton >= 10x).
bench benchmark_224_triton --sizes 224 --batches 64 --rounds 1 --repeat 20 \
  --no-compile --triton
# Out-of-bounds / misaligned accesses in kernels that never ran before; the
# log tails hold the "ERROR SUMMARY".
sanitize memcheck ext
sanitize memcheck triton
# Stages 1 and 3 at every size (C++ fused, Triton, reference).
bench benchmark_sizes --sizes $SIZES --batches 1 --stages 1 3 --rounds 1 \
  --repeat 10 --no-compile --no-newton --triton
bench benchmark_224_bf16 --sizes 224 --batches 64 --dtype bfloat16 \
  --rounds 1 --repeat 20 --no-compile --no-newton --triton
# Shared-memory races (the C++ kernels' hand-written shared memory).
sanitize racecheck ext
# torch.compile of the reference compiles once per process: stage 1 only.
bench benchmark_224_compile --sizes 224 --batches 64 --stages 1 --rounds 1 \
  --repeat 20 --no-newton
echo "== done in $(( $(date +%s) - SCRIPT_START ))s: results in $OUT" \
  "(exit status $tests_rc: tests, or 3 for sanitizer errors)"
exit "$tests_rc"
