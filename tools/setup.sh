#!/usr/bin/env bash
# The one setup command: install soft_mm, its tested dependency set and the test
# tools into the active Python, and compile soft_mm's C++ (and, where a CUDA
# toolkit and GPU are found, CUDA) attention op against the installed torch.
set -euo pipefail
cd "$(dirname "$0")/.."
# torch must exist before soft_mm's extension is compiled against it, so the
# build dependencies come first and pip's isolated build env is not used.
python -m pip install -c requirements/constraints.txt -r requirements/build.txt
# An editable install does not compile extensions reliably (setuptools >= 80
# routes `develop` through an isolated build without torch), so pip installs
# the package without the op (SOFT_MM_WITH_OPS=0, no build at all) and the
# extension is compiled once, in place, by the next line.
SOFT_MM_WITH_OPS=0 python -m pip install -c requirements/constraints.txt \
    --no-build-isolation -e ".[tests,mim]"
python setup.py -q build_ext --inplace
# mim (`mim search/train/test soft_mm`) looks for the package under
# <site-packages>/soft_mm, which an editable install does not create: point
# it at this checkout (whose soft_mm/.mim links tools/, configs/ and the
# model index). Python imports the same files either way.
python - <<'EOF'
import os, sysconfig
site = os.path.join(sysconfig.get_paths()['purelib'], 'soft_mm')
here = os.path.realpath('soft_mm')
if os.path.islink(site) and os.path.realpath(site) != here:
    os.remove(site)  # a link to another checkout
if not os.path.lexists(site):
    os.symlink(here, site)
elif os.path.realpath(site) != here:
    raise SystemExit(f'{site} exists and is not this checkout: '
                     'pip uninstall soft_mm, then run this again')
EOF
python -c "import soft_mm.ops as ops, sys; \
print('soft_mm._ext kernels:', ops.ext_device_types()); \
sys.exit(0 if ops.ext_available() else 'soft_mm._ext did not build')"
