# Copyright (c) soft_mm contributors. All rights reserved.
"""Run ``test_triton.py`` on CPU through Triton's interpreter.

``TRITON_INTERPRET=1`` must be set before triton is imported, and in this
process it already is (``import soft_mm`` loads ``torch._dynamo``, which
imports triton), so the Triton tests run in a fresh interpreter with the
variable set. Skipped where ``test_triton.py`` runs in this process anyway
(a GPU, or ``TRITON_INTERPRET=1`` set from the start).
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from soft_mm.ops import triton as triton_impl

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.skipif(
    torch.cuda.is_available() or triton_impl._interpreter_ready(),
    reason='test_triton.py runs in this process')
@pytest.mark.skipif(
    not triton_impl.triton_available(),
    reason=f'triton not importable: {triton_impl.TRITON_ERROR}')
def test_triton_kernels_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', 'tests/test_ops/test_triton.py',
         '-q', '-p', 'no:cacheprovider', '-rfEs'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = re.search(r'(\d+) passed', proc.stdout)
    assert summary and int(summary[1]) >= 50, tail
    assert not re.search(r'\d+ (skipped|failed|error)', proc.stdout), tail
