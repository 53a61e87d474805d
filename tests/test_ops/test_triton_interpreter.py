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

from soft_mm.ops import get_backend, triton_device_types

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.skipif(
    torch.cuda.is_available() or 'cpu' in triton_device_types(),
    reason='test_triton.py runs in this process')
@pytest.mark.skipif(
    get_backend('triton').import_error() is not None,
    reason=f"triton: {get_backend('triton').import_error()}")
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


FIRST_CALL_COMPILED = '''
import sys
import torch
from soft_mm.ops import soft_attention
assert 'soft_mm.ops.triton.attention' not in sys.modules
q, lm, v = (torch.randn(1, 2, n, 8) * 0.3 for n in (64, 9, 64))

def fn(q, lm, v):
    return soft_attention(q, lm, v, impl='triton', norm=True).tanh() * 2

compiled = torch.compile(fn, fullgraph=True, backend='aot_eager')
torch.testing.assert_close(compiled(q, lm, v), fn(q, lm, v))
print('compiled first call OK')
'''


@pytest.mark.skipif(
    get_backend('triton').import_error() is not None,
    reason=f"triton: {get_backend('triton').import_error()}")
def test_first_triton_call_may_be_compiled():
    """Nothing of the Triton backend is loaded before its first use, and
    that first use may be inside ``torch.compile(fullgraph=True)``: the
    choice of backend runs eagerly while tracing (importing triton and
    reading its mode are not traceable)."""
    env = dict(os.environ, TRITON_INTERPRET='1')
    proc = subprocess.run([sys.executable, '-c', FIRST_CALL_COMPILED],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert 'compiled first call OK' in proc.stdout
