#!/usr/bin/env bash
# The one setup command: install soft_mm, its tested dependency set and the test
# tools into the active Python, and compile soft_mm's C++ (and, where a CUDA
# toolkit is found, CUDA) attention op against the installed torch.
set -euo pipefail
cd "$(dirname "$0")/.."
# torch must exist before soft_mm's extension is compiled against it, so the
# build dependencies come first and pip's isolated build env is not used.
python -m pip install -c requirements/constraints.txt -r requirements/build.txt
python -m pip install -c requirements/constraints.txt --no-build-isolation \
    -e ".[tests,mim]"
