# Copyright (c) soft_mm contributors. All rights reserved.
"""The FLOP handles of SOFT's attention core for mmengine's analyzer."""
import torch
from mmengine.analysis import FlopAnalyzer

from soft_mm.apis.complexity import DISTANCE, NEWTON, soft_flop_handles
from soft_mm.ops import soft_attention_reference


class Core(torch.nn.Module):

    def forward(self, q, lm, v):
        return soft_attention_reference(q, lm, v, newton_iters=7)


def test_flop_handles_count_the_soft_core_exactly():
    B, h, n, m, d = 2, 3, 40, 6, 8
    args = (torch.randn(B, h, n, d), torch.randn(B, h, m, d),
            torch.randn(B, h, n, d))
    analyzer = FlopAnalyzer(Core(), args)
    analyzer.set_op_handle(**soft_flop_handles(7))
    analyzer.unsupported_ops_warnings(False)
    by_op = analyzer.by_operator()
    bh = B * h
    assert by_op[DISTANCE] == bh * (n * m * d + m * m * d)
    assert by_op[NEWTON] == bh * 7 * 2 * m**3
    # A B^-1, A^T V and (A B^-1)(A^T V).
    assert by_op['matmul'] == bh * (n * m * m + m * n * d + n * m * d)
