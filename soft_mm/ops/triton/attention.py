# Copyright (c) soft_mm contributors. All rights reserved.
"""Fused SOFT attention in Triton: ``out = A (W (A^T V))``, with
``A = K(Q, L)`` recomputed tile by tile and never stored.

Forward (ops ``soft_mm_triton::attention_forward``):

1. ``_context_kernel``: ``C = A^T V`` (m x e), one pass over n;
2. ``_landmark_kernel``: ``B = K(L, L)``, the 20 Newton steps, SOFT-Norm's
   ``W = s V s`` and ``M = W C``, one program per (batch, head) for m <= 64
   (beyond: the Triton Gaussian kernel and batched GEMMs);
3. ``_output_kernel``: ``out = A M``, a second pass over n.

Backward (``soft_mm_triton::attention_backward``): ``T = A^T G`` (the first
kernel again), the m x m algebra in PyTorch, then ``_grad_kernel`` forms
``dA = G M^T + V dC^T`` and ``E = dA * A`` per tile and writes ``dQ``, ``dV``
and partial ``dL``. The reference composition (``soft_attention_reference``)
writes and reads the n x m ``A`` several times; here only n x d and n x e
tensors cross memory. Above ``FUSED_MAX_M`` landmarks (or where head dims
and dtype make even a 16-row tile overflow the GPU's shared memory, see
``_meta``) a tile of ``A`` with all of them no longer fits on chip and the
op is composed from the Triton Gaussian kernel, the Newton op and GEMMs
(with ``A`` in memory).
"""
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..first_order import first_order_only
from ..reference import (NEWTON_ALPHA_SCALE, NEWTON_RIDGE, compute_dtype,
                         pairwise_sq_dist)
from .gaussian import gaussian_kernel_op, gaussian_tile
from .newton import (NEWTON_ONCHIP_MAX_M, div_rn, inverse_backward,
                     newton_batched, newton_inverse_op, newton_onchip)
from .utils import (block, check_int32_offsets, device_guard, fit_tile,
                    new_output, num_splits, shared_limit, split_scalar,
                    tl_dtype)

#: Most landmarks the fused n-side kernels hold per tile of A.
FUSED_MAX_M = 128
#: Largest head dims (d of q, e of v) the kernels hold in one block.
MAX_HEAD_DIM = 256


@triton.jit
def _load(ptr, base, offs_r, offs_c, n_r, n_c, s_r, s_c, CDT: tl.constexpr):
    """A zero-padded ``(R, C)`` block of a strided matrix, in ``CDT``."""
    mask = (offs_r < n_r)[:, None] & (offs_c < n_c)[None, :]
    return tl.load(ptr + base + offs_r[:, None] * s_r + offs_c[None, :] * s_c,
                   mask=mask, other=0).to(CDT)


@triton.jit
def _store(ptr, base, offs_r, offs_c, n_r, n_c, s_r, s_c, value):
    mask = (offs_r < n_r)[:, None] & (offs_c < n_c)[None, :]
    tl.store(ptr + base + offs_r[:, None] * s_r + offs_c[None, :] * s_c,
             value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _context_kernel(q_ptr, l_ptr, v_ptr, part_ptr, n, m, d, e, H, n_tiles,
                    n_splits, sqb, sqh, sqn, sqd, slb, slh, slm, sld, svb,
                    svh, svn, sve, CDT: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_E: tl.constexpr):
    """Partial ``A^T V`` of the tiles ``pid_s, pid_s + n_splits, ...`` into
    ``part[pid_s, bh]`` (contiguous ``(n_splits, B * h, m, e)``)."""
    pid = tl.program_id(0)
    pid_s = tl.program_id(1)
    b, hh = (pid // H).to(tl.int64), (pid % H).to(tl.int64)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_e = tl.arange(0, BLOCK_E)
    lm = _load(l_ptr, b * slb + hh * slh, offs_m, offs_d, m, d, slm, sld, CDT)
    l_sq = tl.sum(lm * lm, 1)
    acc = tl.zeros((BLOCK_M, BLOCK_E), CDT)
    for t in range(pid_s, n_tiles, n_splits):
        offs_n = t * BLOCK_N + tl.arange(0, BLOCK_N)
        x = _load(q_ptr, b * sqb + hh * sqh, offs_n, offs_d, n, d, sqn, sqd,
                  CDT)
        a, _ = gaussian_tile(x, lm, tl.sum(x * x, 1), l_sq)
        # Rows past n meet zero rows of V: no mask needed.
        val = _load(v_ptr, b * svb + hh * svh, offs_n, offs_e, n, e, svn, sve,
                    CDT)
        acc += tl.dot(tl.trans(a), val, input_precision='ieee')
    base = (pid_s * (tl.num_programs(0)) + pid).to(tl.int64) * m * e
    _store(part_ptr, base, offs_m, offs_e, m, e, e, 1, acc)


@triton.jit
def _landmark_kernel(l_ptr, c_ptr, kll_ptr, inv_ptr, mctx_ptr, m, d, e, H,
                     iters, scale_hi, scale_lo, ridge_hi, ridge_lo, slb, slh,
                     slm, sld, NORM: tl.constexpr, CDT: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                     BLOCK_E: tl.constexpr):
    """``B = K(L, L)``, ``V = Newton(B)``, ``M = W C`` for one matrix."""
    pid = tl.program_id(0)
    b, hh = (pid // H).to(tl.int64), (pid % H).to(tl.int64)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_e = tl.arange(0, BLOCK_E)
    mask_m = offs_m < m
    lm = _load(l_ptr, b * slb + hh * slh, offs_m, offs_d, m, d, slm, sld, CDT)
    l_sq = tl.sum(lm * lm, 1)
    kll, _ = gaussian_tile(lm, lm, l_sq, l_sq)
    kll = tl.where(mask_m[:, None] & mask_m[None, :], kll, 0)
    mm_base = pid.to(tl.int64) * m * m
    _store(kll_ptr, mm_base, offs_m, offs_m, m, m, m, 1, kll)
    inv = newton_onchip(kll, offs_m, m, iters, scale_hi, scale_lo, ridge_hi,
                        ridge_lo, CDT)
    _store(inv_ptr, mm_base, offs_m, offs_m, m, m, m, 1, inv)
    if NORM:
        # s = rowsum(B)^-1/2 (correctly rounded root); padded rows get 0.
        row_sum = tl.where(mask_m, tl.sum(kll, 1), 1)
        if CDT == tl.float64:
            root = tl.sqrt(row_sum)
        else:
            root = tl.sqrt_rn(row_sum)
        s = tl.where(mask_m, div_rn(1.0, root, CDT), 0)
        w = s[:, None] * inv * s[None, :]
    else:
        w = inv
    me_base = pid.to(tl.int64) * m * e
    ctx = _load(c_ptr, me_base, offs_m, offs_e, m, e, e, 1, CDT)
    _store(mctx_ptr, me_base, offs_m, offs_e, m, e, e, 1,
           tl.dot(w, ctx, input_precision='ieee'))


@triton.jit
def _output_kernel(q_ptr, l_ptr, mctx_ptr, out_ptr, n, m, d, e, H, sqb, sqh,
                   sqn, sqd, slb, slh, slm, sld, sob, soh, son, soe,
                   CDT: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                   BLOCK_E: tl.constexpr):
    """``out = A M`` for one tile of rows."""
    pid = tl.program_id(0)
    b, hh = (pid // H).to(tl.int64), (pid % H).to(tl.int64)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_e = tl.arange(0, BLOCK_E)
    lm = _load(l_ptr, b * slb + hh * slh, offs_m, offs_d, m, d, slm, sld, CDT)
    x = _load(q_ptr, b * sqb + hh * sqh, offs_n, offs_d, n, d, sqn, sqd, CDT)
    a, _ = gaussian_tile(x, lm, tl.sum(x * x, 1), tl.sum(lm * lm, 1))
    a = tl.where((offs_m < m)[None, :], a, 0)
    mctx = _load(mctx_ptr, pid.to(tl.int64) * m * e, offs_m, offs_e, m, e, e,
                 1, CDT)
    _store(out_ptr, b * sob + hh * soh, offs_n, offs_e, n, e, son, soe,
           tl.dot(a, mctx, input_precision='ieee'))


@triton.jit
def _grad_kernel(q_ptr, l_ptr, v_ptr, g_ptr, mctx_ptr, dctx_ptr, dq_ptr,
                 dv_ptr, part_ptr, n, m, d, e, H, n_tiles, n_splits, sqb, sqh,
                 sqn, sqd, slb, slh, slm, sld, svb, svh, svn, sve, sgb, sgh,
                 sgn, sge, CDT: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                 BLOCK_E: tl.constexpr):
    """Per tile: ``dA = G M^T + V dC^T``, ``E = dA * A`` (where the distance
    was not clamped), ``dQ = E L - rowsum(E) Q``, ``dV = A dC``; and the
    partial ``dL = E^T Q - colsum(E) L`` of this program's tiles."""
    pid = tl.program_id(0)
    pid_s = tl.program_id(1)
    b, hh = (pid // H).to(tl.int64), (pid % H).to(tl.int64)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_e = tl.arange(0, BLOCK_E)
    mask_m = offs_m < m
    lm = _load(l_ptr, b * slb + hh * slh, offs_m, offs_d, m, d, slm, sld, CDT)
    l_sq = tl.sum(lm * lm, 1)
    me_base = pid.to(tl.int64) * m * e
    mctx = _load(mctx_ptr, me_base, offs_m, offs_e, m, e, e, 1, CDT)
    dctx = _load(dctx_ptr, me_base, offs_m, offs_e, m, e, e, 1, CDT)
    acc = tl.zeros((BLOCK_M, BLOCK_D), CDT)
    col_sum = tl.zeros((BLOCK_M, ), CDT)
    nd_base = pid.to(tl.int64) * n * d
    ne_base = pid.to(tl.int64) * n * e
    for t in range(pid_s, n_tiles, n_splits):
        offs_n = t * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_n = offs_n < n
        x = _load(q_ptr, b * sqb + hh * sqh, offs_n, offs_d, n, d, sqn, sqd,
                  CDT)
        a, keep = gaussian_tile(x, lm, tl.sum(x * x, 1), l_sq)
        a = tl.where(mask_m[None, :], a, 0)
        grad = _load(g_ptr, b * sgb + hh * sgh, offs_n, offs_e, n, e, sgn,
                     sge, CDT)
        val = _load(v_ptr, b * svb + hh * svh, offs_n, offs_e, n, e, svn, sve,
                    CDT)
        d_a = (tl.dot(grad, tl.trans(mctx), input_precision='ieee') +
               tl.dot(val, tl.trans(dctx), input_precision='ieee'))
        ee = tl.where(keep & mask_n[:, None] & mask_m[None, :], d_a * a, 0)
        d_q = tl.dot(ee, lm, input_precision='ieee') - \
            tl.sum(ee, 1)[:, None] * x
        _store(dq_ptr, nd_base, offs_n, offs_d, n, d, d, 1, d_q)
        _store(dv_ptr, ne_base, offs_n, offs_e, n, e, e, 1,
               tl.dot(a, dctx, input_precision='ieee'))
        acc += tl.dot(tl.trans(ee), x, input_precision='ieee')
        col_sum += tl.sum(ee, 0)
    base = (pid_s * (tl.num_programs(0)) + pid).to(tl.int64) * m * d
    _store(part_ptr, base, offs_m, offs_d, m, d, d, 1,
           acc - col_sum[:, None] * lm)


def unsupported_reason(q: Tensor, landmarks: Tensor,
                       v: Tensor) -> Optional[str]:
    """Why the Triton kernels cannot take these inputs, or None."""
    if max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM:
        return (f'head dims up to {MAX_HEAD_DIM} are supported, got '
                f'd={q.shape[-1]}, dv={v.shape[-1]}')
    return None


def _meta(dtype, m, d, e, device) -> Optional[dict]:
    """Launch configuration of the n-side kernels, or None where no tile of
    ``A`` with all ``m`` landmarks fits the device's shared memory (then
    the op is composed from the Gaussian kernels and GEMMs)."""
    block_m, block_d, block_e = block(m), block(d), block(e)
    meta = dict(CDT=tl_dtype(dtype), BLOCK_M=block_m, BLOCK_D=block_d,
                BLOCK_E=block_e)
    limit = shared_limit(device)
    if limit is None:
        # The interpreter runs whole blocks as numpy arrays: larger ones
        # mean fewer (slow) Python-level programs.
        meta['BLOCK_N'] = 256 if block_m <= 64 else 128
        return meta
    size = dtype.itemsize
    cols = block_d + 2 * block_e

    def footprint(block_n, stages):
        # _grad_kernel, the largest: L, M, dC (m rows), Q, G, V (n rows,
        # in flight), two n x m tiles. Calibrated on sm_90 (upper bound).
        return size * (block_m * cols + block_n * cols * stages +
                       2 * block_n * block_m)

    # 64 x 64 tiles of A (32 x 128 above 64 landmarks) keep the registers
    # in check; 8 warps for the big ones halve the spills of the FMA dots.
    fit = fit_tile(footprint, limit, (64, 32, 16) if block_m <= 64 else
                   (32, 16))
    if fit is None:
        return None
    meta.update(BLOCK_N=fit[0], num_stages=fit[1],
                num_warps=8 if block_m * fit[0] >= 64 * 64 else 4)
    return meta


def _landmark_meta(dtype, m, d, e, device) -> Optional[dict]:
    """Configuration of the on-chip landmark kernel, or None where it does
    not apply (m > 64) or its m x m matrices would overflow shared memory
    (then: the Gaussian kernel and batched GEMMs)."""
    if m > NEWTON_ONCHIP_MAX_M:
        return None
    block_m, block_d, block_e = block(m), block(d), block(e)
    meta = dict(CDT=tl_dtype(dtype), BLOCK_M=block_m, BLOCK_D=block_d,
                BLOCK_E=block_e)
    limit = shared_limit(device)
    if limit is None:
        return meta
    # L, C, and the Newton step's operands (V, P, VP, W).
    if dtype.itemsize * block_m * (block_d + block_e + 4 * block_m) > \
            0.9 * limit:
        return None
    meta['num_warps'] = 8 if block_m >= 64 else 4
    return meta


def fused_supported(q: Tensor, landmarks: Tensor, v: Tensor) -> bool:
    """Whether the fused kernels take these shapes (else: composed)."""
    return landmarks.shape[2] <= FUSED_MAX_M and _meta(
        compute_dtype(q, landmarks, v), landmarks.shape[2], q.shape[3],
        v.shape[3], q.device) is not None


def _a_transpose_times(x: Tensor, q: Tensor, landmarks: Tensor, dtype,
                       meta) -> Tensor:
    """``A^T x`` (``(B*h, m, e)``) for ``x`` of shape ``(B, h, n, e)``."""
    bsz, heads, n, d = q.shape
    m, e = landmarks.shape[2], x.shape[3]
    bh = bsz * heads
    n_tiles = triton.cdiv(n, meta['BLOCK_N'])
    splits = num_splits(n_tiles, bh, q.device)
    part = new_output((splits, bh, m, e), dtype, q.device)
    _context_kernel[(bh, splits)](q, landmarks, x, part, n, m, d, e, heads,
                                  n_tiles, splits, *q.stride(),
                                  *landmarks.stride(), *x.stride(), **meta)
    return part.sum(0)


def _weights(inv: Tensor, kernel_ll: Tensor, norm: bool):
    """``W`` and ``s`` (SOFT-Norm) as the reference forms them."""
    if not norm:
        return inv, None
    s = kernel_ll.sum(-1).rsqrt()
    return s[..., :, None] * inv * s[..., None, :], s


@torch.library.custom_op(
    'soft_mm_triton::attention_forward', mutates_args=())
def attention_forward_op(q: Tensor, landmarks: Tensor, v: Tensor, iters: int,
                         norm: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns ``(out, V, B, C)``: the output in ``v``'s dtype, and the
    Newton iterate, the landmark kernel and ``A^T V`` (compute dtype) that
    the backward needs."""
    check_int32_offsets('soft_attention', q, landmarks, v, lead=2)
    with device_guard(q.device):
        return _attention_forward(q, landmarks, v, iters, norm)


def _attention_forward(q, landmarks, v, iters, norm):
    dtype = compute_dtype(q, landmarks, v)
    bsz, heads, n, d = q.shape
    m, e = landmarks.shape[2], v.shape[3]
    bh = bsz * heads
    meta = _meta(dtype, m, d, e, q.device)
    dev = q.device
    out = new_output((bsz, heads, n, e), v.dtype, dev)
    kernel_ll = new_output((bh, m, m), dtype, dev)
    inv = new_output((bh, m, m), dtype, dev)
    mctx = new_output((bh, m, e), dtype, dev)
    if bh == 0:
        return out, inv, kernel_ll, mctx
    context = _a_transpose_times(v, q, landmarks, dtype, meta)
    lm_meta = _landmark_meta(dtype, m, d, e, dev)
    if lm_meta is not None:
        _landmark_kernel[(bh, )](
            landmarks, context, kernel_ll, inv, mctx, m, d, e, heads, iters,
            *split_scalar(NEWTON_ALPHA_SCALE), *split_scalar(NEWTON_RIDGE),
            *landmarks.stride(), NORM=norm, **lm_meta)
    else:
        with torch.autocast(dev.type, enabled=False):
            lm3 = landmarks.reshape(bh, m, d)
            kernel_ll = gaussian_kernel_op(lm3, lm3)
            inv = newton_batched(kernel_ll, iters, NEWTON_RIDGE)
            mctx = _weights(inv, kernel_ll, norm)[0] @ context
    if n:
        _output_kernel[(bh, triton.cdiv(n, meta['BLOCK_N']))](
            q, landmarks, mctx, out, n, m, d, e, heads, *q.stride(),
            *landmarks.stride(), *out.stride(), **meta)
    return out, inv, kernel_ll, context


@attention_forward_op.register_fake
def _(q, landmarks, v, iters, norm):
    dtype = compute_dtype(q, landmarks, v)
    bh, m, e = q.shape[0] * q.shape[1], landmarks.shape[2], v.shape[3]
    return (v.new_empty(q.shape[:3] + (e, )),
            q.new_empty((bh, m, m), dtype=dtype),
            q.new_empty((bh, m, m), dtype=dtype),
            q.new_empty((bh, m, e), dtype=dtype))


@torch.library.custom_op(
    'soft_mm_triton::attention_backward', mutates_args=())
def attention_backward_op(grad: Tensor, q: Tensor, landmarks: Tensor,
                          v: Tensor, inv: Tensor, kernel_ll: Tensor,
                          context: Tensor,
                          norm: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients w.r.t. ``q``, ``landmarks``, ``v`` in their dtypes."""
    check_int32_offsets('soft_attention', grad, q, landmarks, v, lead=2)
    with device_guard(q.device):
        return _attention_backward(grad, q, landmarks, v, inv, kernel_ll,
                                   context, norm)


def _attention_backward(grad, q, landmarks, v, inv, kernel_ll, context,
                        norm):
    dtype = kernel_ll.dtype
    bsz, heads, n, d = q.shape
    m, e = landmarks.shape[2], v.shape[3]
    bh = bsz * heads
    meta = _meta(dtype, m, d, e, q.device)
    dev = q.device
    grad_q = new_output(q.shape, q.dtype, dev)
    grad_v = new_output(v.shape, v.dtype, dev)
    if bh == 0:
        return grad_q, torch.zeros_like(landmarks), grad_v
    t = _a_transpose_times(grad, q, landmarks, dtype, meta)
    with torch.autocast(dev.type, enabled=False):
        # The m x m algebra (tiny GEMMs): see docs/ops.md for the formulas.
        weights, s = _weights(inv, kernel_ll, norm)
        mctx = weights @ context
        d_ctx = weights.transpose(1, 2) @ t
        d_weights = t @ context.transpose(1, 2)
        if norm:
            d_inv = s[:, :, None] * d_weights * s[:, None, :]
            gv = d_weights * inv
            d_s = (gv @ s[:, :, None] + gv.transpose(1, 2) @ s[:, :, None])
            # s = r^-1/2 of the row sums r: dr = -s^3 / 2 ds, along rows.
            d_kernel_ll = inverse_backward(d_inv, inv) + \
                d_s * s[:, :, None].pow(3) * -0.5
        else:
            d_kernel_ll = inverse_backward(d_weights, inv)
        # Gaussian backward of B = K(L, L) (both arguments are L).
        lm3 = landmarks.reshape(bh, m, d).to(dtype)
        keep = pairwise_sq_dist(lm3, lm3) >= 0
        ee = torch.where(keep, d_kernel_ll * kernel_ll, 0)
        grad_l = (ee + ee.transpose(1, 2)) @ lm3 - \
            (ee.sum(2) + ee.sum(1))[:, :, None] * lm3
    n_tiles = triton.cdiv(n, meta['BLOCK_N'])
    splits = num_splits(n_tiles, bh, dev)
    part = new_output((splits, bh, m, d), dtype, dev)
    _grad_kernel[(bh, splits)](
        q, landmarks, v, grad, mctx.contiguous(), d_ctx.contiguous(), grad_q,
        grad_v, part, n, m, d, e, heads, n_tiles, splits, *q.stride(),
        *landmarks.stride(), *v.stride(), *grad.stride(), **meta)
    grad_l = (grad_l + part.sum(0)).view(landmarks.shape)
    return grad_q, grad_l.to(landmarks.dtype), grad_v


@attention_backward_op.register_fake
def _(grad, q, landmarks, v, inv, kernel_ll, context, norm):
    return (torch.empty_like(q), torch.empty_like(landmarks),
            torch.empty_like(v))


def _setup(ctx, inputs, output):
    q, landmarks, v, _, norm = inputs
    _, inv, kernel_ll, context = output
    ctx.norm = norm
    # The auxiliary outputs exist only to be saved here; no zero gradients
    # need to be materialised for them.
    ctx.mark_non_differentiable(inv, kernel_ll, context)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(q, landmarks, v, inv, kernel_ll, context)


@first_order_only("soft_attention(impl='triton')")
def _backward(ctx, grad_out, *unused_aux_grads):
    if grad_out is None:
        return None, None, None, None, None
    q, landmarks, v, inv, kernel_ll, context = ctx.saved_tensors
    grads = attention_backward_op(grad_out, q, landmarks, v, inv, kernel_ll,
                                  context, ctx.norm)
    return grads[0], grads[1], grads[2], None, None


attention_forward_op.register_autograd(_backward, setup_context=_setup)


def _attention_composed(q: Tensor, landmarks: Tensor, v: Tensor, iters: int,
                        norm: bool) -> Tensor:
    """The path for m > FUSED_MAX_M: Triton Gaussian kernels (n x m ``A`` in
    memory), the Newton op and GEMMs, each with its own backward."""
    dtype = compute_dtype(q, landmarks, v)
    bsz, heads, n, d = q.shape
    m, e = landmarks.shape[2], v.shape[3]
    with torch.autocast(q.device.type, enabled=False):
        q3 = q.reshape(-1, n, d)
        lm3 = landmarks.reshape(-1, m, d)
        kernel_ql = gaussian_kernel_op(q3, lm3)
        kernel_ll = gaussian_kernel_op(lm3, lm3)
        inv = newton_inverse_op(kernel_ll, iters, NEWTON_RIDGE)
        weights = _weights(inv, kernel_ll, norm)[0]
        context = kernel_ql.transpose(1, 2) @ v.reshape(-1, n, e).to(dtype)
        out = kernel_ql @ (weights @ context)
    return out.view(bsz, heads, n, e).to(v.dtype)


def soft_attention_triton(q: Tensor, landmarks: Tensor, v: Tensor,
                          newton_iters: int, norm: bool) -> Tensor:
    """SOFT attention from the Triton kernels: fused for up to
    ``FUSED_MAX_M`` landmarks, composed beyond (see the module docstring).

    Returns:
        Tensor: ``(B, h, n, dv)`` in the dtype of ``v``.
    """
    why = unsupported_reason(q, landmarks, v)
    if why:
        raise ValueError(f"soft_attention: impl='triton': {why}")
    if not fused_supported(q, landmarks, v):
        return _attention_composed(q, landmarks, v, newton_iters, norm)
    return attention_forward_op(q, landmarks, v, newton_iters, bool(norm))[0]
