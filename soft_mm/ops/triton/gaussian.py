# Copyright (c) soft_mm contributors. All rights reserved.
"""Tiled Triton Gaussian kernel ``exp(-||x_i - y_j||^2 / 2)`` and its
backward, as the op ``torch.ops.soft_mm_triton.gaussian_kernel``."""
import torch
import triton
import triton.language as tl
from torch import Tensor

from ..first_order import first_order_only
from ..reference import compute_dtype
from .utils import (block, check_int32_offsets, device_guard, fit_tile,
                    new_output, shared_limit, tl_dtype)

BLOCK_N = 64
BLOCK_M = 64


def _meta(dtype: torch.dtype, d: int, device: torch.device) -> dict:
    """Launch configuration: 64 x 64 tiles, smaller (and fewer pipeline
    stages) where the head dim and dtype would overflow shared memory."""
    block_d = block(d)
    meta = dict(CDT=tl_dtype(dtype), BLOCK_N=BLOCK_N, BLOCK_M=BLOCK_M,
                BLOCK_D=block_d)
    limit = shared_limit(device)
    if limit is None:
        return meta
    size = dtype.itemsize

    def footprint(blk, stages):  # the backward's: x, y in flight, 3 tiles
        return size * (3 * blk * blk + block_d * blk * (1 + max(stages - 1,
                                                                1)))

    blk, stages = fit_tile(footprint, limit, (64, 32, 16)) or (16, 1)
    meta.update(BLOCK_N=blk, BLOCK_M=blk, num_stages=stages)
    return meta


@triton.jit
def gaussian_tile(x, y, x_sq, y_sq):
    """Kernel tile and the mask where the distance was not clamped.

    The reference's formula: ``d = |x|^2 + |y|^2 - 2 x.y``, clamped at 0
    (written so that a NaN stays NaN), then ``exp(-d / 2)``. The mask is
    where the clamp's gradient passes (``d >= 0``).
    """
    dot = tl.dot(x, tl.trans(y), input_precision='ieee')
    dist = (x_sq[:, None] + y_sq[None, :]) - 2 * dot
    kernel = tl.exp(-0.5 * tl.where(dist < 0, 0, dist))
    return kernel, dist >= 0


@triton.jit
def _gaussian_fwd_kernel(x_ptr, y_ptr, out_ptr, n, m, d, sxb, sxn, sxd, syb,
                         sym, syd, sob, son, som, CDT: tl.constexpr,
                         BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                         BLOCK_D: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(2) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask_n, mask_m, mask_d = offs_n < n, offs_m < m, offs_d < d
    x = tl.load(x_ptr + pid_b * sxb + offs_n[:, None] * sxn +
                offs_d[None, :] * sxd,
                mask=mask_n[:, None] & mask_d[None, :], other=0).to(CDT)
    y = tl.load(y_ptr + pid_b * syb + offs_m[:, None] * sym +
                offs_d[None, :] * syd,
                mask=mask_m[:, None] & mask_d[None, :], other=0).to(CDT)
    kernel, _ = gaussian_tile(x, y, tl.sum(x * x, 1), tl.sum(y * y, 1))
    tl.store(out_ptr + pid_b * sob + offs_n[:, None] * son +
             offs_m[None, :] * som, kernel,
             mask=mask_n[:, None] & mask_m[None, :])


@triton.jit
def _gaussian_bwd_kernel(grad_ptr, x_ptr, y_ptr, gx_ptr, n, m, d, sgb, sgn,
                         sgm, sxb, sxn, sxd, syb, sym, syd, CDT: tl.constexpr,
                         BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                         BLOCK_D: tl.constexpr):
    """``gx = E y - rowsum(E) x`` with ``E = grad * K`` (K recomputed).

    Called with x/y (and grad's n/m strides) swapped it gives
    ``gy = E^T x - colsum(E) y``. ``gx`` is contiguous ``(N, n, d)``.
    """
    pid_b = tl.program_id(0).to(tl.int64)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_n, mask_d = offs_n < n, offs_d < d
    x = tl.load(x_ptr + pid_b * sxb + offs_n[:, None] * sxn +
                offs_d[None, :] * sxd,
                mask=mask_n[:, None] & mask_d[None, :], other=0).to(CDT)
    x_sq = tl.sum(x * x, 1)
    acc = tl.zeros((BLOCK_N, BLOCK_D), CDT)
    row_sum = tl.zeros((BLOCK_N, ), CDT)
    for m0 in range(0, m, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mask_m = offs_m < m
        y = tl.load(y_ptr + pid_b * syb + offs_m[:, None] * sym +
                    offs_d[None, :] * syd,
                    mask=mask_m[:, None] & mask_d[None, :], other=0).to(CDT)
        kernel, keep = gaussian_tile(x, y, x_sq, tl.sum(y * y, 1))
        grad = tl.load(grad_ptr + pid_b * sgb + offs_n[:, None] * sgn +
                       offs_m[None, :] * sgm,
                       mask=mask_n[:, None] & mask_m[None, :],
                       other=0).to(CDT)
        e = tl.where(keep & mask_m[None, :], grad * kernel, 0)
        acc += tl.dot(e, y, input_precision='ieee')
        row_sum += tl.sum(e, 1)
    gx = acc - row_sum[:, None] * x
    tl.store(gx_ptr + pid_b * n * d + offs_n[:, None] * d + offs_d[None, :],
             gx, mask=mask_n[:, None] & mask_d[None, :])


def _check(x: Tensor, y: Tensor) -> None:
    for name, t in (('x', x), ('y', y)):
        if t.dim() != 3 or not t.is_floating_point():
            raise ValueError(f'gaussian_kernel_triton: {name} must be a 3-D '
                             f'float tensor, got {t.dtype} {tuple(t.shape)}')
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError('gaussian_kernel_triton: x (N, n, d) and y (N, m, d)'
                         f' must share N and d, got {tuple(x.shape)} and '
                         f'{tuple(y.shape)}')
    if x.device != y.device:
        raise ValueError('gaussian_kernel_triton: x and y must be on one '
                         f'device, got {x.device} and {y.device}')
    if x.shape[2] > 256:
        raise ValueError('gaussian_kernel_triton: d <= 256 is supported, got '
                         f'{x.shape[2]}')


@torch.library.custom_op('soft_mm_triton::gaussian_kernel', mutates_args=())
def gaussian_kernel_op(x: Tensor, y: Tensor) -> Tensor:
    """``(N, n, d), (N, m, d) -> (N, n, m)`` in the compute dtype."""
    _check(x, y)
    dtype = compute_dtype(x, y)
    nb, n, d = x.shape
    m = y.shape[1]
    out = new_output((nb, n, m), dtype, x.device)
    check_int32_offsets('gaussian_kernel_triton', x, y, out)
    if out.numel():
        meta = _meta(dtype, d, x.device)
        grid = (nb, triton.cdiv(n, meta['BLOCK_N']),
                triton.cdiv(m, meta['BLOCK_M']))
        with device_guard(x.device):
            _gaussian_fwd_kernel[grid](
                x, y, out, n, m, d, *x.stride(), *y.stride(), *out.stride(),
                **meta)
    return out


@gaussian_kernel_op.register_fake
def _(x, y):
    return x.new_empty((x.shape[0], x.shape[1], y.shape[1]),
                       dtype=compute_dtype(x, y))


@torch.library.custom_op(
    'soft_mm_triton::gaussian_kernel_backward', mutates_args=())
def gaussian_kernel_backward_op(grad: Tensor, x: Tensor,
                                y: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`gaussian_kernel_op` in the compute dtype."""
    dtype = compute_dtype(x, y)
    nb, n, d = x.shape
    m = y.shape[1]
    gx = new_output(x.shape, dtype, x.device)
    gy = new_output(y.shape, dtype, y.device)
    meta = _meta(dtype, d, x.device)
    block_n = meta['BLOCK_N']
    sg = grad.stride()
    check_int32_offsets('gaussian_kernel_triton', grad, x, y, gx, gy)
    with device_guard(x.device):
        if nb and n:
            _gaussian_bwd_kernel[(nb, triton.cdiv(n, block_n))](
                grad, x, y, gx, n, m, d, sg[0], sg[1], sg[2], *x.stride(),
                *y.stride(), **meta)
        if nb and m:
            # The same kernel on the transposed problem: E^T x - colsum(E) y.
            _gaussian_bwd_kernel[(nb, triton.cdiv(m, block_n))](
                grad, y, x, gy, m, n, d, sg[0], sg[2], sg[1], *y.stride(),
                *x.stride(), **meta)
    if not n:
        gy.zero_()
    if not m:
        gx.zero_()
    return gx, gy


@gaussian_kernel_backward_op.register_fake
def _(grad, x, y):
    dtype = compute_dtype(x, y)
    return x.new_empty(x.shape, dtype=dtype), y.new_empty(y.shape,
                                                          dtype=dtype)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


@first_order_only("gaussian_kernel(impl='triton')")
def _backward(ctx, grad):
    x, y = ctx.saved_tensors
    gx, gy = gaussian_kernel_backward_op(grad, x, y)
    return gx.to(x.dtype), gy.to(y.dtype)


gaussian_kernel_op.register_autograd(_backward, setup_context=_setup)


def gaussian_kernel_triton(x: Tensor, y: Tensor) -> Tensor:
    """``exp(-||x_i - y_j||^2 / 2)`` of ``(..., n, d)`` and ``(..., m, d)``
    from the tiled kernel: ``(..., n, m)`` in float32 (float64 for float64
    inputs)."""
    lead = x.shape[:-2]
    out = gaussian_kernel_op(x.reshape(-1, *x.shape[-2:]),
                             y.reshape(-1, *y.shape[-2:]))
    return out.view(*lead, x.shape[-2], y.shape[-2])
