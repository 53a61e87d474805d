# Copyright (c) soft_mm contributors. All rights reserved.
"""Count SOFT's multiply-accumulates with mmengine's jit-based FlopAnalyzer.

mmengine counts convs, linears, matmuls and norms but silently drops three
ops a SOFT classifier runs (``attn_impl='reference'``):

- ``aten::baddbmm``: the pairwise distances ``||q||^2 + ||k||^2 - 2 q k^T``
  of both kernels (``n x m x d`` and ``m x m x d`` per head);
- ``prim::PythonOp.NewtonInverse``: the autograd Function holding the Newton
  iterations, which the tracer records as one opaque node. Its cost is
  ``iters x 2 x m^3`` per (batch, head) matrix (``V <- 2V - V P V``); the
  iteration count is not a traced input, so it is passed in explicitly;
- ``aten::scaled_dot_product_attention`` of stage 4 (``2 x N^2 x d``).

The handles below add them under their own names so a table can show them.
Counts are multiply-accumulates (mmengine's and the papers' "FLOPs").
"""
from collections import Counter
from math import prod
from typing import Callable, Dict

from mmengine.analysis.jit_handles import get_shape

#: Operator names the handles report under.
DISTANCE, NEWTON, SOFTMAX_ATTN = 'soft_distance', 'soft_newton', 'sdpa'


def baddbmm_flop(inputs, outputs) -> Counter:
    """``baddbmm(input, b1, b2)``: ``b x n x k x m`` MACs."""
    b1, b2 = get_shape(inputs[1]), get_shape(inputs[2])
    return Counter({DISTANCE: prod(b1) * b2[-1]})


def newton_flop_handle(iters: int) -> Callable:
    """Handle for the ``NewtonInverse`` node: ``iters x 2 x m^3`` per matrix.

    Args:
        iters (int): Newton iterations the model runs.
    """

    def handle(inputs, outputs) -> Counter:
        shape = get_shape(inputs[0])
        m = shape[-1]
        return Counter({NEWTON: prod(shape[:-2]) * iters * 2 * m**3})

    return handle


def sdpa_flop(inputs, outputs) -> Counter:
    """Softmax attention: ``q k^T`` and ``attn v``, ``2 x B h N L d``."""
    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    return Counter({SOFTMAX_ATTN: 2 * prod(q) * k[-2]})


def soft_flop_handles(newton_iters: int) -> Dict[str, Callable]:
    """Op handles to pass to ``FlopAnalyzer.set_op_handle(**handles)``.

    Args:
        newton_iters (int): Newton iterations of the model's SOFT blocks.

    Returns:
        dict: Operator name to handle.
    """
    return {
        'aten::baddbmm': baddbmm_flop,
        'prim::PythonOp.NewtonInverse': newton_flop_handle(newton_iters),
        'aten::scaled_dot_product_attention': sdpa_flop,
    }
