# Copyright (c) soft_mm contributors. All rights reserved.
"""Compile the Triton kernels for sm_90 ahead of time (no GPU needed).

The interpreter, which runs ``test_triton.py`` without a GPU, accepts much
that the GPU compiler rejects (``tl.dot`` shapes, dtypes, shared memory
limits). ``tools/gpu/compile_triton.py --quick`` compiles every kernel, at
the launch configurations the launchers pick on an H100 / H200, to a cubin
with Triton's compiler and ptxas, and fails on any compile error or shared
memory overflow. Skipped only where triton or its ptxas is missing.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest

from soft_mm.ops import get_backend

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'gpu', 'compile_triton.py')


def _ptxas():
    try:
        from triton import knobs
        return knobs.nvidia.ptxas.path
    except Exception:  # noqa: BLE001  (no NVIDIA backend in this wheel)
        return None


@pytest.mark.skipif(
    get_backend('triton').import_error() is not None,
    reason=f"triton: {get_backend('triton').import_error()}")
def test_kernels_compile_for_sm90():
    ptxas = _ptxas()
    if not ptxas or not osp.exists(ptxas):
        pytest.skip("ptxas not found in triton's NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    proc = subprocess.run([sys.executable, SCRIPT, '--quick'], cwd=ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=1800)
    tail = proc.stdout[-8000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    assert 'compiled within limits' in proc.stdout, tail
