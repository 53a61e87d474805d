# Copyright (c) soft_mm contributors. All rights reserved.
"""SOFT's Newton inverse in Triton, as ``torch.ops.soft_mm_triton.
newton_inverse``: one program per matrix, all steps on chip, for m <= 64;
batched GEMMs (two per step into preallocated buffers) beyond."""
import torch
import triton
import triton.language as tl
from torch import Tensor

from ..first_order import first_order_only
from ..reference import (NEWTON_ALPHA_SCALE, NEWTON_ITERS, NEWTON_RIDGE,
                         compute_dtype, newton_alpha)
from .utils import (block, check_int32_offsets, device_guard, new_output,
                    split_scalar, tl_dtype)

#: Largest m whose matrices (P, V, VP: 3 x 64 x 64 floats) one program holds.
NEWTON_ONCHIP_MAX_M = 64


@triton.jit
def div_rn(x, y, CDT: tl.constexpr):
    """``x / y`` correctly rounded. On NVIDIA GPUs Triton compiles a float32
    ``/`` to the approximate ``div.full.f32`` (up to 2 ulp; the interpreter
    and PyTorch round correctly); float64 division is exact-rounded."""
    if CDT == tl.float64:
        return x / y
    else:
        return tl.div_rn(x, y)


@triton.jit
def newton_onchip(b, offs, m, iters, scale_hi, scale_lo, ridge_hi, ridge_lo,
                  CDT: tl.constexpr):
    """The iteration on a zero-padded ``(BLOCK_M, BLOCK_M)`` block ``b``.

    As the reference: ``alpha = scale / (max_i sum_j |B_ij|)^2``,
    ``P = B + ridge I``, ``V0 = alpha P``, ``V <- 2V - (V P) V``. Padded
    rows and columns stay 0 in every step.
    """
    scale = tl.cast(scale_hi, CDT) + tl.cast(scale_lo, CDT)
    ridge = tl.cast(ridge_hi, CDT) + tl.cast(ridge_lo, CDT)
    max_row = tl.max(tl.sum(tl.abs(b), 1), 0)
    alpha = div_rn(scale, max_row * max_row, CDT)
    diag = (offs[:, None] == offs[None, :]) & (offs < m)[:, None]
    p = b + tl.where(diag, ridge, 0)
    v = alpha * p
    for _ in range(iters):
        vp = tl.dot(v, p, input_precision='ieee')
        v = 2 * v - tl.dot(vp, v, input_precision='ieee')
    return v


@triton.jit
def _newton_kernel(mat_ptr, out_ptr, m, iters, scale_hi, scale_lo, ridge_hi,
                   ridge_lo, smb, smr, smc, CDT: tl.constexpr,
                   BLOCK_M: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK_M)
    mask = (offs < m)[:, None] & (offs < m)[None, :]
    b = tl.load(mat_ptr + pid * smb + offs[:, None] * smr +
                offs[None, :] * smc, mask=mask, other=0).to(CDT)
    v = newton_onchip(b, offs, m, iters, scale_hi, scale_lo, ridge_hi,
                      ridge_lo, CDT)
    tl.store(out_ptr + pid * m * m + offs[:, None] * m + offs[None, :], v,
             mask=mask)


def newton_batched(mat: Tensor, iters: int, ridge: float) -> Tensor:
    """The large-m path: ``2 * iters`` batched GEMMs on ``(N, m, m)``."""
    with torch.autocast(mat.device.type, enabled=False):
        eye = torch.eye(mat.shape[-1], dtype=mat.dtype, device=mat.device)
        p = mat + ridge * eye
        v = newton_alpha(mat) * p
        vp, nxt = torch.empty_like(v), torch.empty_like(v)
        for _ in range(iters):
            torch.bmm(v, p, out=vp)
            # 2 v - (v p) v, rounded as the reference's `2 * v - v @ p @ v`.
            torch.baddbmm(v, vp, v, beta=2, alpha=-1, out=nxt)
            v, nxt = nxt, v
    return v


def newton_launch(mat: Tensor, iters: int, ridge: float) -> Tensor:
    """Newton inverse of ``(N, m, m)`` in the compute dtype, no autograd."""
    dtype = compute_dtype(mat)
    nb, m, _ = mat.shape
    if m > NEWTON_ONCHIP_MAX_M:
        return newton_batched(mat.to(dtype), iters, ridge)
    out = new_output(mat.shape, dtype, mat.device)
    check_int32_offsets('newton_inverse_triton', mat)
    if nb:
        with device_guard(mat.device):
            _newton_kernel[(nb, )](
                mat, out, m, iters, *split_scalar(NEWTON_ALPHA_SCALE),
                *split_scalar(ridge), *mat.stride(), CDT=tl_dtype(dtype),
                BLOCK_M=block(m), num_warps=8 if m > 32 else 4)
    return out


@torch.library.custom_op('soft_mm_triton::newton_inverse', mutates_args=())
def newton_inverse_op(mat: Tensor, iters: int, ridge: float) -> Tensor:
    """``(N, m, m) -> (N, m, m)`` in the compute dtype."""
    return newton_launch(mat, iters, ridge)


@newton_inverse_op.register_fake
def _(mat, iters, ridge):
    return mat.new_empty(mat.shape, dtype=compute_dtype(mat))


def inverse_backward(grad: Tensor, inv: Tensor) -> Tensor:
    """The analytic backward ``-V^T G V^T`` (the iterate taken as exact)."""
    inv_t = inv.transpose(-1, -2)
    return -(inv_t @ grad.to(inv.dtype) @ inv_t)


def _setup(ctx, inputs, output):
    ctx.mat_dtype = inputs[0].dtype
    ctx.save_for_backward(output)


@first_order_only("newton_inverse(impl='triton')")
def _backward(ctx, grad):
    inv, = ctx.saved_tensors
    with torch.autocast(inv.device.type, enabled=False):
        return inverse_backward(grad, inv).to(ctx.mat_dtype), None, None


newton_inverse_op.register_autograd(_backward, setup_context=_setup)


def newton_inverse_triton(mat: Tensor,
                          iters: int = NEWTON_ITERS,
                          ridge: float = NEWTON_RIDGE) -> Tensor:
    """SOFT's Newton inverse of ``mat + ridge * I`` (``(..., m, m)``): one
    program per matrix for m <= 64, batched GEMMs beyond; float32 (float64
    for float64 inputs)."""
    out = newton_inverse_op(mat.reshape(-1, *mat.shape[-2:]), iters,
                            float(ridge))
    return out.view(mat.shape)
