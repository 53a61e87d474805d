#!/usr/bin/env bash
# Build and install the full mmcv (compiled ops) against the torch of the current
# Python environment, then install the detection / segmentation toolboxes.
#
# Why a script: mmdet 3.3 and mmseg 1.2 need mmcv's compiled ops (nms, RoIAlign,
# ...), which mmcv-lite lacks, and no prebuilt mmcv 2.x wheel exists for recent
# torch. Building mmcv 2.1.0 from the PyPI sdist fails twice out of the box:
#   1. pip's isolated build environment has no torch and (setuptools >= 81) no
#      pkg_resources -> we build with --no-build-isolation against the env's torch
#      and a setuptools < 81;
#   2. its setup.py forces -std=c++17 while torch >= 2.10 headers need C++20
#      -> the standard is patched to c++20 in a copy of the sdist.
# The built wheel is cached, keyed by mmcv version, torch version, Python tag,
# platform and CPU/CUDA, so a second run only reinstalls it (seconds).
#
# Usage:
#   bash tools/install_mmcv.sh [--wheel-only] [--no-toolboxes]
#     --wheel-only    build (or find) the cached wheel and print its path; install nothing
#     --no-toolboxes  install mmcv but not requirements/dense.txt (mmdet, mmseg, ...)
#
# Environment:
#   SOFT_MM_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/soft_mm);
#                   wheels go to $SOFT_MM_CACHE/wheels/<key>/
#   MMCV_VERSION    mmcv release to build (default 2.1.0; mmdet 3.3 needs < 2.2)
#   MAX_JOBS        parallel compile jobs (default: nproc)
#   FORCE_CUDA      1: build the CUDA ops (needs nvcc); 0: CPU ops only. Default:
#                   CUDA when torch is a CUDA build, a GPU is visible and nvcc exists.
#   TORCH_CUDA_ARCH_LIST  passed through to the CUDA build (e.g. "8.0;9.0").
#   PIP_CONSTRAINT / requirements/constraints.txt  used as pip -c when present.
set -euo pipefail

WHEEL_ONLY=0
WITH_TOOLBOXES=1
for arg in "$@"; do
    case "$arg" in
        --wheel-only) WHEEL_ONLY=1 ;;
        --no-toolboxes) WITH_TOOLBOXES=0 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "install_mmcv.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
MMCV_VERSION="${MMCV_VERSION:-2.1.0}"
CACHE_ROOT="${SOFT_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/soft_mm}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"

log() { echo "[install_mmcv] $*"; }
die() { echo "[install_mmcv] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- environment
"$PYTHON" -c "import torch" 2>/dev/null \
    || die "torch is not importable by '$PYTHON'; install soft_mm's requirements first."
"$PYTHON" -c "import pkg_resources" 2>/dev/null \
    || die "pkg_resources is missing (setuptools >= 81); mmcv's setup.py needs it: pip install 'setuptools<81'"

PIP_C=()
if [[ -n "${PIP_CONSTRAINT:-}" ]]; then
    :  # pip reads PIP_CONSTRAINT itself
elif [[ -f "$REPO_ROOT/requirements/constraints.txt" ]]; then
    PIP_C=(-c "$REPO_ROOT/requirements/constraints.txt")
fi

read -r TORCH_VERSION TORCH_CUDA GPU_VISIBLE PY_TAG PLAT < <("$PYTHON" - <<'EOF'
import sys, sysconfig, torch
cuda = torch.version.cuda or 'none'
gpu = int(torch.cuda.is_available())
tag = 'cp%d%d' % sys.version_info[:2]
plat = sysconfig.get_platform().replace('-', '_').replace('.', '_')
print(torch.__version__, cuda, gpu, tag, plat)
EOF
)

if [[ -z "${FORCE_CUDA:-}" ]]; then
    if [[ "$TORCH_CUDA" != none && "$GPU_VISIBLE" == 1 ]] && command -v nvcc >/dev/null; then
        FORCE_CUDA=1
    else
        FORCE_CUDA=0
    fi
fi
if [[ "$FORCE_CUDA" == 1 ]]; then
    [[ "$TORCH_CUDA" != none ]] || die "FORCE_CUDA=1 but torch $TORCH_VERSION is not a CUDA build."
    command -v nvcc >/dev/null || [[ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]] \
        || die "FORCE_CUDA=1 but nvcc is not on PATH (set CUDA_HOME)."
    OPS_TAG="cuda${TORCH_CUDA}"
else
    OPS_TAG="cpu"
fi
export FORCE_CUDA MMCV_WITH_OPS=1

KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}_${PY_TAG}_${PLAT}_${OPS_TAG}"
WHEEL_DIR="$CACHE_ROOT/wheels/$KEY"
log "torch $TORCH_VERSION (CUDA $TORCH_CUDA), ops: $OPS_TAG, MAX_JOBS=$MAX_JOBS"
log "wheel cache: $WHEEL_DIR"

find_wheel() { ls "$WHEEL_DIR"/mmcv-"${MMCV_VERSION}"-*.whl 2>/dev/null | head -n 1 || true; }

# ---------------------------------------------------------------- build (if not cached)
WHEEL="$(find_wheel)"
if [[ -n "$WHEEL" ]]; then
    log "using cached wheel $WHEEL"
else
    BUILD_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/soft_mm_mmcv.XXXXXX")"
    trap 'rm -rf "$BUILD_ROOT"' EXIT
    log "downloading the mmcv==$MMCV_VERSION sdist"
    # pip prepares metadata even for `download`: isolation would fail on
    # pkg_resources here already.
    "$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation \
        --dest "$BUILD_ROOT" "mmcv==$MMCV_VERSION"
    SDIST="$(ls "$BUILD_ROOT"/mmcv-"$MMCV_VERSION".tar.gz)"
    tar -xzf "$SDIST" -C "$BUILD_ROOT"
    SRC="$BUILD_ROOT/mmcv-$MMCV_VERSION"
    [[ -f "$SRC/setup.py" ]] || die "no setup.py in $SDIST"

    # torch >= 2.10 headers use C++20 features; mmcv's setup.py hardcodes c++17
    # (for both the host compiler and nvcc).
    sed -i 's/-std=c++17/-std=c++20/g; s/-std=c++14/-std=c++20/g' "$SRC/setup.py"
    grep -q -- '-std=c++20' "$SRC/setup.py" \
        || die "could not patch the C++ standard in $SRC/setup.py (mmcv $MMCV_VERSION layout changed?)"
    if grep -q -- '-std=c++1[47]' "$SRC/setup.py"; then
        die "$SRC/setup.py still requests an older C++ standard after patching"
    fi

    log "building the wheel (about 18 min on 2 idle cores for CPU ops; much longer with CUDA)"
    START=$(date +%s)
    mkdir -p "$WHEEL_DIR"
    # Python's own CFLAGS carry -g: debug info for ~80 torch-heavy files
    # slows the build and bloats the wheel. distutils takes $CFLAGS instead
    # of Python's, so pass Python's flags (-O3, -DNDEBUG, ...) without -g;
    # a caller's CFLAGS are kept as they are.
    if [[ -z "${CFLAGS:-}" ]]; then
        CFLAGS="$("$PYTHON" -c "import sysconfig; print(' '.join(f for f in (sysconfig.get_config_var('CFLAGS') or '').split() if f != '-g'))")"
        export CFLAGS
    fi
    # --no-build-isolation: compile against this environment's torch.
    "$PYTHON" -m pip wheel --no-build-isolation --no-deps -v \
        --wheel-dir "$BUILD_ROOT/dist" "$SRC"
    BUILT="$(ls "$BUILD_ROOT"/dist/mmcv-"$MMCV_VERSION"-*.whl)"
    cp "$BUILT" "$WHEEL_DIR/"
    WHEEL="$(find_wheel)"
    log "built $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1)) in $(( $(date +%s) - START )) s"
fi

if [[ "$WHEEL_ONLY" == 1 ]]; then
    echo "$WHEEL"
    exit 0
fi

# ---------------------------------------------------------------- install
# mmcv-lite and mmcv ship the same `mmcv` package directory: remove the lite
# distribution first, otherwise uninstalling it later would delete files of the
# full install (and pip would consider both installed).
if "$PYTHON" -m pip show mmcv-lite >/dev/null 2>&1; then
    log "uninstalling mmcv-lite (the full mmcv is a superset of it)"
    "$PYTHON" -m pip uninstall -y mmcv-lite
fi
INSTALLED="$("$PYTHON" -m pip show mmcv 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "$INSTALLED" == "$MMCV_VERSION" ]] \
        && "$PYTHON" -c "from mmcv.ops import nms" >/dev/null 2>&1; then
    log "mmcv $MMCV_VERSION with compiled ops is already installed"
else
    log "installing $(basename "$WHEEL")"
    "$PYTHON" -m pip install --force-reinstall --no-deps "$WHEEL"
    # mmcv's own runtime requirements (addict, yapf, opencv, ...); normally
    # already there because mmcv-lite has the same list.
    "$PYTHON" -m pip install "${PIP_C[@]}" "$WHEEL"
fi

if [[ "$WITH_TOOLBOXES" == 1 ]]; then
    log "installing requirements/dense.txt (mmdet, mmsegmentation, ...)"
    "$PYTHON" -m pip install "${PIP_C[@]}" -r "$REPO_ROOT/requirements/dense.txt"
fi

# ---------------------------------------------------------------- verify
"$PYTHON" - <<'EOF'
import mmcv
from mmcv.ops import RoIAlign, nms  # noqa: F401  compiled ops must load
import torch
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
_, keep = nms(boxes, scores, iou_threshold=0.5)
assert keep.tolist() == [0, 2], keep
print(f'[install_mmcv] mmcv {mmcv.__version__} with compiled ops OK (nms, RoIAlign)')
EOF
if [[ "$WITH_TOOLBOXES" == 1 ]]; then
    "$PYTHON" -c "import mmdet, mmseg; print('[install_mmcv] mmdet', mmdet.__version__, '/ mmseg', mmseg.__version__)"
fi
