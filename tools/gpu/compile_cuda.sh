#!/usr/bin/env bash
# Compile-only check of soft_mm's CUDA extension, no GPU needed (CI runs it
# wherever nvcc exists). Builds setup.py's get_extensions() with
# TORCH_CUDA_ARCH_LIST (default "8.0;9.0") into a temporary directory, so the
# in-place soft_mm/_ext*.so is left alone, and checks the result registers
# the CUDA kernels.
#
#   bash tools/gpu/compile_cuda.sh            # sm_80 + sm_90
#   TORCH_CUDA_ARCH_LIST="9.0" bash tools/gpu/compile_cuda.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export FORCE_CUDA=1
# torch derives CUDA_HOME from `which nvcc`; a wrapper in /usr/local/bin would
# make it /usr/local (no lib64/libcudart). Prefer the real toolkit.
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
out="$(mktemp -d "${TMPDIR:-/tmp}/soft_mm_cuda_build.XXXXXX")"
trap 'rm -rf "$out"' EXIT
echo "soft_mm: compiling the CUDA extension for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST in $out"
start=$(date +%s)
# `python -` puts the working directory (the repository root) on sys.path.
python - "$out" <<'PY'
import os, sys
out = sys.argv[1]
import setup as soft_setup  # only get_extensions() is used
from setuptools import setup
exts, build_ext = soft_setup.get_extensions()
assert any('WITH_CUDA' in dict(e.define_macros) for e in exts), 'CUDA not enabled'
sys.argv = ['setup.py', 'build_ext', '--build-lib', out,
            '--build-temp', os.path.join(out, 'tmp')]
setup(name='soft_mm', ext_modules=exts, packages=[],
      cmdclass={'build_ext': build_ext.with_options(use_ninja=True)})
PY
so="$(find "$out" -name '_ext*.so' | head -n 1)"
test -n "$so" || { echo "soft_mm: no _ext*.so produced" >&2; exit 1; }
# The kernels must be in the binary for every requested architecture.
if command -v cuobjdump >/dev/null 2>&1; then
  cuobjdump --list-elf "$so" | sed 's/^/  /'
fi
echo "soft_mm: CUDA extension compiled in $(( $(date +%s) - start ))s: $(basename "$so")"
