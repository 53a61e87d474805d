# Copyright (c) soft_mm contributors. All rights reserved.
"""Pure-PyTorch SOFT attention core: the oracle every kernel is tested against.

Shapes used throughout:

- ``q``: queries (and keys, SOFT has ``K = Q``), ``(B, h, n, d)``, already
  scaled by ``d ** -0.25``.
- ``landmarks``: the sampled queries ``Q~``, ``(B, h, m, d)``.
- ``v``: values, ``(B, h, n, dv)``.

The attention is ``X = (A @ B^-1) @ (A^T @ V)`` with the Gaussian kernels
``A = exp(-D(Q, Q~) / 2)`` (n x m) and ``B = exp(-D(Q~, Q~) / 2)`` (m x m),
``B^-1`` being SOFT's fixed 20-step Newton iteration (see ``docs/design.md``,
sections "Attention" and "Newton inverse and its gradient").
"""
import contextlib
from typing import Optional

import torch
from torch import Tensor

from .backend import Backend
from .first_order import first_order_only

#: The iteration count of the published models; part of the model itself.
NEWTON_ITERS = 20
#: Ridge added to the landmark kernel before inversion. Must equal
#: ``kNewtonRidge`` in ``csrc/common/soft_attention_common.h``.
NEWTON_RIDGE = 0.01
#: The Newton step is ``alpha = NEWTON_ALPHA_SCALE / (max row sum)^2``, i.e.
#: ``0.9 * 2 / ||B||_inf^2``. Must equal ``kNewtonAlphaScale`` in
#: ``csrc/common/soft_attention_common.h`` (the Triton kernels take this one);
#: ``tests/test_ops`` checks the compiled op against it at 0 and 1 steps.
NEWTON_ALPHA_SCALE = 1.8


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype the kernels run in: float64 if any input is, else float32.

    Half and bfloat16 inputs are promoted because the Newton iteration's
    error grows like ``eps * cond(B)`` (cond up to ~5e3).
    """
    if any(t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def pairwise_sq_dist(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``||x_i - y_j||^2``, clamped at 0.

    Args:
        x (Tensor): ``(..., n, d)``.
        y (Tensor): ``(..., m, d)``.

    Returns:
        Tensor: ``(..., n, m)`` in the dtype of the inputs.
    """
    x_sq = x.pow(2).sum(-1, keepdim=True)
    y_sq = y.pow(2).sum(-1, keepdim=True).transpose(-1, -2)
    # The matmul form loses precision to cancellation; the clamp keeps the
    # exponent below never positive, as the fused kernels do.
    dist = torch.baddbmm(
        (x_sq + y_sq).flatten(0, -3), x.flatten(0, -3),
        y.flatten(0, -3).transpose(-1, -2), alpha=-2.0)
    return dist.view(*x.shape[:-1], y.shape[-2]).clamp_min(0)


def gaussian_kernel(x: Tensor, y: Tensor) -> Tensor:
    """``exp(-||x_i - y_j||^2 / 2)`` for all pairs.

    Args:
        x (Tensor): ``(..., n, d)``.
        y (Tensor): ``(..., m, d)``.

    Returns:
        Tensor: ``(..., n, m)`` with entries in ``(0, 1]``.
    """
    return torch.exp(-0.5 * pairwise_sq_dist(x, y))


def autocast_off(device_type: str):
    """A context with autocast off on ``device_type``; a no-op for devices
    autocast does not know (``'meta'``: shape inference)."""
    if device_type == 'meta':
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)


def max_row_sum(mat: Tensor) -> Tensor:
    """``max_i sum_j |B_ij|`` of each matrix ``(..., m, m)``: ``(...)``."""
    return mat.abs().sum(-1).amax(-1)


def newton_alpha(mat: Tensor) -> Tensor:
    """Per-matrix step ``alpha = 0.9 * 2 / (max_i sum_j |B_ij|)^2``.

    Args:
        mat (Tensor): ``(..., m, m)``.

    Returns:
        Tensor: ``(..., 1, 1)``, broadcastable against ``mat``.
    """
    return (NEWTON_ALPHA_SCALE / max_row_sum(mat).pow(2))[..., None, None]


@torch.no_grad()
def newton_iterate(mat: Tensor,
                   iters: int = NEWTON_ITERS,
                   ridge: float = NEWTON_RIDGE) -> Tensor:
    """Run SOFT's Newton-Schulz iteration for ``(mat + ridge * I)^-1``.

    ``alpha`` is taken from ``mat`` itself, ``V0 = alpha * P`` and each step
    is ``V <- 2V - V P V``. No autograd: see :func:`newton_inverse`.

    Args:
        mat (Tensor): ``(..., m, m)`` symmetric matrices.
        iters (int): Number of iterations. Defaults to 20.
        ridge (float): Diagonal ridge. Defaults to 0.01.

    Returns:
        Tensor: The iterate ``V_iters``, same shape and dtype as ``mat``.
    """
    eye = torch.eye(mat.shape[-1], dtype=mat.dtype, device=mat.device)
    p = mat + ridge * eye
    v = newton_alpha(mat) * p
    for _ in range(iters):
        v = 2 * v - v @ p @ v
    return v


class NewtonInverse(torch.autograd.Function):
    """Newton inverse with SOFT's analytic backward ``dB = -V^T G V^T``.

    The forward runs the fixed iteration without recording it; the backward
    treats the result as the exact inverse of ``B + ridge * I``.
    """

    @staticmethod
    def forward(ctx, mat: Tensor, iters: int, ridge: float) -> Tensor:
        inv = newton_iterate(mat, iters, ridge)
        ctx.save_for_backward(inv)
        return inv

    @staticmethod
    @first_order_only('the Newton inverse (its analytic gradient)')
    def backward(ctx, grad: Tensor):
        inv, = ctx.saved_tensors
        inv_t = inv.transpose(-1, -2)
        return -(inv_t @ grad @ inv_t), None, None


def newton_inverse(mat: Tensor,
                   iters: int = NEWTON_ITERS,
                   ridge: float = NEWTON_RIDGE) -> Tensor:
    """Differentiable SOFT Newton inverse of ``mat + ridge * I``.

    Args:
        mat (Tensor): ``(..., m, m)``.
        iters (int): Number of iterations. Defaults to 20.
        ridge (float): Diagonal ridge. Defaults to 0.01.

    Returns:
        Tensor: ``(..., m, m)``.
    """
    return NewtonInverse.apply(mat, iters, ridge)


def landmark_inverse(landmarks: Tensor,
                     newton_iters: int = NEWTON_ITERS,
                     norm: bool = False) -> Tensor:
    """The (optionally degree-normalised) inverse of the landmark kernel.

    Args:
        landmarks (Tensor): ``(B, h, m, d)`` in the compute dtype.
        newton_iters (int): Newton iterations. Defaults to 20.
        norm (bool): SOFT-Norm: ``Dg^-1/2 B^-1 Dg^-1/2`` with
            ``Dg = rowsum(B)``. Defaults to False.

    Returns:
        Tensor: ``(B, h, m, m)``.
    """
    kernel = gaussian_kernel(landmarks, landmarks)
    inv = newton_inverse(kernel, newton_iters)
    if norm:
        deg_isqrt = kernel.sum(-1).rsqrt()
        inv = deg_isqrt[..., :, None] * inv * deg_isqrt[..., None, :]
    return inv


def soft_attention_reference(q: Tensor,
                             landmarks: Tensor,
                             v: Tensor,
                             newton_iters: int = NEWTON_ITERS,
                             norm: bool = False) -> Tensor:
    """SOFT attention composed from PyTorch ops.

    The kernels and the m x m work run in float32 (float64 for float64
    inputs) with autocast disabled; the two n-sized products run in the
    dtype of ``v`` (or the ambient autocast dtype).

    Args:
        q (Tensor): ``(B, h, n, d)`` scaled queries.
        landmarks (Tensor): ``(B, h, m, d)``.
        v (Tensor): ``(B, h, n, dv)``.
        newton_iters (int): Newton iterations. Defaults to 20.
        norm (bool): Use SOFT-Norm. Defaults to False.

    Returns:
        Tensor: ``(B, h, n, dv)``.
    """
    dtype = compute_dtype(q, landmarks)
    with autocast_off(q.device.type):
        q32, lm32 = q.to(dtype), landmarks.to(dtype)
        kernel_ql = gaussian_kernel(q32, lm32)
        inv = landmark_inverse(lm32, newton_iters, norm)
        # (A B^-1) is n x m: cheap, and kept in the accurate dtype.
        weights = kernel_ql @ inv
    # Association order (A B^-1)(A^T V) keeps memory O(n m).
    context = kernel_ql.to(v.dtype).transpose(-1, -2) @ v
    return weights.to(v.dtype) @ context


def soft_attention_rows(q: Tensor,
                        landmarks: Tensor,
                        rows: Tensor,
                        newton_iters: int = NEWTON_ITERS,
                        norm: bool = False) -> Tensor:
    """Rows of SOFT's attention matrix ``A B^-1 A^T`` (never formed whole).

    Row ``i`` is the weight that query ``i`` gives every token:
    ``soft_attention_reference(q, landmarks, v)[..., i, :]`` equals
    ``soft_attention_rows(q, landmarks, [i]) @ v``.

    Args:
        q (Tensor): ``(B, h, n, d)`` scaled queries.
        landmarks (Tensor): ``(B, h, m, d)``.
        rows (Tensor): ``(k,)`` query indices in ``[0, n)``.
        newton_iters (int): Newton iterations. Defaults to 20.
        norm (bool): Use SOFT-Norm. Defaults to False.

    Returns:
        Tensor: ``(B, h, k, n)`` in the compute dtype (float32, or float64
        for float64 inputs).
    """
    rows = torch.as_tensor(rows, device=q.device)
    n = q.shape[-2]
    if rows.dim() != 1 or rows.dtype.is_floating_point or rows.numel() == 0:
        raise ValueError('soft_attention_rows: rows must be a non-empty 1-D '
                         f'integer index, got {tuple(rows.shape)} '
                         f'{rows.dtype}')
    if rows.min() < 0 or rows.max() >= n:
        raise ValueError(f'soft_attention_rows: rows must lie in [0, {n}) '
                         f'(n queries), got {rows.tolist()}')
    dtype = compute_dtype(q, landmarks)
    with autocast_off(q.device.type):
        q32, lm32 = q.to(dtype), landmarks.to(dtype)
        kernel_ql = gaussian_kernel(q32, lm32)
        inv = landmark_inverse(lm32, newton_iters, norm)
        return kernel_ql[..., rows, :] @ inv @ kernel_ql.transpose(-1, -2)


class ReferenceBackend(Backend):
    """The functions above as a backend (``impl='reference'``): runs on
    every device."""

    name = 'reference'

    def unavailable_reason(self, device_type: str) -> Optional[str]:
        return None

    def attention(self, q, landmarks, v, newton_iters, norm):
        return soft_attention_reference(q, landmarks, v, newton_iters, norm)

    def gaussian_kernel(self, x, y):
        return gaussian_kernel(x, y)

    def newton_inverse(self, mat, iters, ridge):
        return newton_inverse(mat, iters, ridge)
