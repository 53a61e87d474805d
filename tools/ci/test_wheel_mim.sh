#!/usr/bin/env bash
# CI check of the packaged tools: build soft_mm's wheel, install it into a
# fresh virtual environment, and run `mim test` / `mim train` against the
# copies of tools/ and configs/ that the wheel carries in soft_mm/.mim.
#
#   tools/ci/test_wheel_mim.sh CHECKPOINT [MIN_TOP1]
#
# CHECKPOINT: a checkpoint of configs/soft/soft-tiny_1xb64_digits.py (the
# digits run CI made before); MIN_TOP1 (default 50): the top-1 accuracy in %
# that `mim test` must report for it.
#
# Run it with the CI virtual environment active (torch, mmengine, mmpretrain,
# openmim installed). The wheel is built with SOFT_MM_WITH_OPS=0: compiling
# the C++ op takes minutes and the op is covered by the unit tests; the
# packaged model then runs on the PyTorch reference attention. The fresh
# venv sees the CI venv's packages through a .pth file (`python -m venv
# --system-site-packages` would expose the base interpreter's packages,
# not the CI venv's), so nothing is downloaded.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 CHECKPOINT [MIN_TOP1]" >&2
    exit 2
fi
CHECKPOINT=$(realpath "$1")
MIN_TOP1=${2:-50}
if [ ! -f "$CHECKPOINT" ]; then
    echo "$0: checkpoint not found: $1" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CONFIG=soft-tiny_1xb64_digits.py  # a bare name: mim must find it
WORK=$(mktemp -d "${TMPDIR:-/tmp}/soft_mm_wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
step() { echo; echo "== $*"; }

step "build the wheel (SOFT_MM_WITH_OPS=0)"
SOFT_MM_WITH_OPS=0 python -m pip wheel --no-build-isolation --no-deps \
    -q -w "$WORK/dist" "$ROOT"
WHEEL=$(ls "$WORK"/dist/soft_mm-*.whl)
echo "$WHEEL"
for f in soft_mm/.mim/model-index.yml \
         soft_mm/.mim/tools/train.py soft_mm/.mim/tools/test.py \
         soft_mm/.mim/tools/dist_train.sh \
         "soft_mm/.mim/configs/soft/$CONFIG" \
         soft_mm/.mim/configs/soft/soft-tiny_8xb128_in1k.py \
         soft_mm/.mim/configs/_base_/default_runtime.py; do
    python - "$WHEEL" "$f" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
if sys.argv[2] not in names:
    sys.exit(f'{sys.argv[2]} is missing from the wheel')
PY
done

step "install it into a fresh venv"
python -m venv "$WORK/venv"
CI_SITE=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
VENV_SITE=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$CI_SITE" > "$VENV_SITE/_soft_mm_ci_site.pth"
"$WORK/venv/bin/python" -m pip install -q --no-deps --no-index "$WHEEL"
PY="$WORK/venv/bin/python"
cd "$WORK"  # not the checkout: soft_mm must come from the wheel
unset PYTHONPATH
"$PY" - <<'PY'
import os.path as osp
import soft_mm
from mim.utils import get_installed_path
where = osp.realpath(osp.dirname(soft_mm.__file__))
assert '/venv/' in where and 'site-packages' in where, where
assert osp.realpath(get_installed_path('soft_mm')) == where
print('soft_mm', soft_mm.__version__, 'from', where)
# mmpretrain's model hub knows the models, with configs inside the wheel.
from mmpretrain.apis import ModelHub
config = ModelHub.get('soft-tiny_1xb64_digits').config.filename
assert osp.realpath(config).startswith(osp.join(where, '.mim')), config
print('model hub: soft-tiny_1xb64_digits ->', config)
PY

step "mim search soft_mm (the model index inside the wheel)"
"$PY" -m mim search soft_mm --valid-config > "$WORK/search.txt"
cat "$WORK/search.txt"
grep -q 'soft-tiny_1xb64_digits' "$WORK/search.txt"
grep -q 'soft-norm-huge_3rdparty_16xb64-official_in1k' "$WORK/search.txt"

step "mim test soft_mm $CONFIG (bare name, one process)"
"$PY" -m mim test soft_mm "$CONFIG" --checkpoint "$CHECKPOINT" \
    --work-dir "$WORK/test1" --out "$WORK/m1.json" --out-item metrics
step "mim test soft_mm <config path> --launcher pytorch --gpus 2 (CPU, gloo)"
CFG_PATH=$("$PY" -c 'import soft_mm, os.path as o; print(o.join(o.dirname(soft_mm.__file__), ".mim", "configs", "soft", "'"$CONFIG"'"))')
"$PY" -m mim test soft_mm "$CFG_PATH" --checkpoint "$CHECKPOINT" \
    --launcher pytorch --gpus 2 --port 29650 \
    --work-dir "$WORK/test2" --out "$WORK/m2.json" --out-item metrics
"$PY" - "$WORK/m1.json" "$WORK/m2.json" "$MIN_TOP1" <<'PY'
import json, sys
one, two = (json.load(open(p))['accuracy/top1'] for p in sys.argv[1:3])
print(f'top-1: {one:.2f} % (1 process), {two:.2f} % (2 processes)')
assert one >= float(sys.argv[3]), f'top-1 {one} < {sys.argv[3]}'
assert abs(one - two) < 1e-6, 'the two launches disagree'
PY

step "mim train soft_mm $CONFIG (one short epoch)"
"$PY" -m mim train soft_mm "$CONFIG" --work-dir "$WORK/train" \
    --cfg-options train_dataloader.dataset.indices=64 train_cfg.max_epochs=1 \
    val_dataloader.dataset.indices=64
test -f "$WORK/train/epoch_1.pth"
echo
echo "wheel + mim: OK"
