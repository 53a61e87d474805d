# Copyright (c) soft_mm contributors. All rights reserved.
"""The fake (meta) kernels of ``soft_mm._ext``'s ops describe what the real
kernels return: shapes, dtypes and strides, for contiguous and strided
inputs (``torch.library.opcheck``). ``torch.compile`` and ``torch.export``
plan memory from them, so a wrong stride is a wrong program, not a wrong
error message."""
import functools

import pytest
import torch
from torch.library import opcheck

from soft_mm.ops import ext

pytestmark = pytest.mark.skipif(not ext.ext_available(),
                                reason='soft_mm._ext is not built')

CHECKS = ('test_schema', 'test_faketensor', 'test_aot_dispatch_dynamic')


def _transposed(t: torch.Tensor, dim0: int, dim1: int) -> torch.Tensor:
    """``t``'s values in a strided layout: the transpose of a contiguous
    tensor, transposed back."""
    return t.transpose(dim0, dim1).contiguous().transpose(dim0, dim1)


def _spd(batch: int, m: int, dtype) -> torch.Tensor:
    a = torch.randn(batch, m, m, dtype=dtype)
    return a @ a.transpose(1, 2) / m + torch.eye(m, dtype=dtype)


@functools.lru_cache(maxsize=None)
def _cases(dtype):
    """Every case's op and inputs, built once per dtype (the names are read
    at collection, the inputs by the tests)."""
    torch.manual_seed(0)
    sm = torch.ops.soft_mm
    B, h, n, m, d = 2, 3, 37, 5, 8
    x = torch.randn(B * h, n, d, dtype=dtype)
    y = torch.randn(B * h, m, d, dtype=dtype)
    mat = _spd(B * h, m, dtype)
    q = torch.randn(B, h, n, d, dtype=dtype)
    lm = torch.randn(B, h, m, d, dtype=dtype)
    v = torch.randn(B, h, n, d, dtype=dtype)
    kernel = sm.gaussian_kernel(x, y)
    inv = sm.newton_inverse(mat)
    outs = sm.soft_attention_forward(q, lm, v)
    fmap = torch.randn(2, 9, 7, 16, dtype=dtype)
    return {
        'gaussian': (sm.gaussian_kernel, (x, y)),
        'gaussian-strided': (sm.gaussian_kernel,
                             (_transposed(x, 0, 1), _transposed(y, 1, 2))),
        'gaussian-bwd': (sm.gaussian_kernel_backward,
                         (torch.randn_like(kernel), x, y, kernel)),
        'gaussian-bwd-strided': (sm.gaussian_kernel_backward,
                                 (_transposed(torch.randn_like(kernel), 1, 2),
                                  _transposed(x, 1, 2), y, kernel)),
        'newton': (sm.newton_inverse, (mat, 7)),
        'newton-transposed': (sm.newton_inverse, (mat.transpose(1, 2), 7)),
        'newton-bwd': (sm.newton_inverse_backward,
                       (torch.randn_like(inv), inv)),
        'newton-bwd-transposed': (sm.newton_inverse_backward,
                                  (torch.randn_like(inv).transpose(1, 2),
                                   inv.transpose(1, 2))),
        'attention': (sm.soft_attention_forward, (q, lm, v)),
        'attention-strided': (sm.soft_attention_forward,
                              (_transposed(q, 1, 2), lm,
                               _transposed(v, 1, 2), 20, True)),
        'attention-bwd': (sm.soft_attention_backward,
                          (torch.randn_like(outs[0]), q, lm, v, *outs[1:],
                           False)),
        'depthwise-wgrad': (sm.depthwise_conv2d_weight_grad,
                            (fmap, torch.randn_like(fmap), 5)),
        'depthwise-wgrad-strided': (sm.depthwise_conv2d_weight_grad,
                                    (_transposed(fmap, 1, 2),
                                     torch.randn_like(fmap), 3)),
    }


CASE_NAMES = list(_cases(torch.float64)) if ext.ext_available() else []


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('name', CASE_NAMES)
def test_fake_kernels_match_the_cpu_kernels(name, dtype):
    op, args = _cases(dtype)[name]
    results = opcheck(op, args, test_utils=CHECKS)
    assert results == dict.fromkeys(CHECKS, 'SUCCESS'), results
