# Copyright (c) soft_mm contributors. All rights reserved.
"""The compiled extension ``soft_mm._ext`` as a backend of the SOFT
attention op (``impl='ext'``).

The C++ library defines the ops ``torch.ops.soft_mm.*`` and their CPU, CUDA
and NPU kernels (``soft_mm/ops/csrc``). This module loads it and registers
what belongs to Python: fake (meta) kernels for ``torch.compile`` /
``torch.export``, and the backward formulas through
``torch.library.register_autograd``. The kernels compute in float32 (float64
for float64 inputs); gradients are cast back to the dtype of each input.
"""
import importlib
from typing import Optional, Tuple

import torch

from .backend import Backend
from .first_order import first_order_only
from .reference import NEWTON_ITERS, NEWTON_RIDGE, compute_dtype

#: Why the extension is unusable, or None when it loaded.
EXT_ERROR: Optional[str] = None

try:
    # import_module, not `from soft_mm import _ext`: while soft_mm is still
    # initialising the latter reports a misleading "circular import".
    _ext = importlib.import_module('soft_mm._ext')
except (ImportError, OSError) as e:  # not built, or built for another torch
    _ext = None
    EXT_ERROR = f'{type(e).__name__}: {e}'
else:
    if not hasattr(torch.library, 'register_fake'):
        _ext = None
        EXT_ERROR = (f'torch {torch.__version__} lacks torch.library.'
                     'register_fake/register_autograd (needs torch>=2.4)')


def ext_available() -> bool:
    """Whether ``soft_mm._ext`` loaded and its ops are registered."""
    return _ext is not None


def ext_device_types() -> Tuple[str, ...]:
    """Device types the built extension has kernels for, e.g. ``('cpu',)``."""
    if _ext is None:
        return ()
    types = ['cpu']
    if _ext.with_cuda:
        types.append('cuda')
    if _ext.with_npu:
        types.append('npu')
    return tuple(types)


def _register() -> None:
    lib_ops = torch.ops.soft_mm
    fake = torch.library.register_fake

    # ---- fake kernels: shapes and dtypes only, for torch.compile/export.
    @fake('soft_mm::gaussian_kernel')
    def _(x, y):
        return x.new_empty((x.shape[0], x.shape[1], y.shape[1]),
                           dtype=compute_dtype(x, y))

    @fake('soft_mm::gaussian_kernel_backward')
    def _(grad, x, y, kernel):
        return (x.new_empty(x.shape, dtype=kernel.dtype),
                y.new_empty(y.shape, dtype=kernel.dtype))

    @fake('soft_mm::newton_inverse')
    def _(mat, iters=NEWTON_ITERS, ridge=NEWTON_RIDGE):
        return mat.new_empty(mat.shape, dtype=compute_dtype(mat))

    @fake('soft_mm::newton_inverse_backward')
    def _(grad, inv):
        # contiguous, as the kernels return it (empty_like would keep the
        # strides of a transposed inv)
        return inv.new_empty(inv.shape)

    @fake('soft_mm::soft_attention_forward')
    def _(q, landmarks, v, iters=NEWTON_ITERS, norm=False):
        dtype = compute_dtype(q, landmarks, v)
        bh, n, m = q.shape[0] * q.shape[1], q.shape[2], landmarks.shape[2]
        return (v.new_empty(q.shape[:3] + v.shape[3:]),
                q.new_empty((bh, n, m), dtype=dtype),
                q.new_empty((bh, m, m), dtype=dtype),
                q.new_empty((bh, m, m), dtype=dtype),
                q.new_empty((bh, m, v.shape[3]), dtype=dtype))

    @fake('soft_mm::soft_attention_backward')
    def _(grad_out, q, landmarks, v, kernel_ql, kernel_ll, inv, context,
          norm):
        dtype = kernel_ql.dtype
        return (q.new_empty(q.shape, dtype=dtype),
                landmarks.new_empty(landmarks.shape, dtype=dtype),
                v.new_empty(v.shape, dtype=dtype))

    @fake('soft_mm::depthwise_conv2d_weight_grad')
    def _(x, grad, kernel_size):
        return x.new_empty((x.shape[3], kernel_size, kernel_size),
                           dtype=compute_dtype(x, grad))

    # ---- autograd: backward formulas calling the backward ops (which have
    # no derivatives of their own: a double backward raises).
    def gaussian_setup(ctx, inputs, output):
        x, y = inputs
        ctx.save_for_backward(x, y, output)

    @first_order_only("gaussian_kernel(impl='ext')")
    def gaussian_backward(ctx, grad):
        x, y, kernel = ctx.saved_tensors
        gx, gy = lib_ops.gaussian_kernel_backward(grad, x, y, kernel)
        return gx.to(x.dtype), gy.to(y.dtype)

    torch.library.register_autograd(
        'soft_mm::gaussian_kernel',
        gaussian_backward,
        setup_context=gaussian_setup)

    def newton_setup(ctx, inputs, output):
        ctx.mat_dtype = inputs[0].dtype
        ctx.save_for_backward(output)

    @first_order_only("newton_inverse(impl='ext')")
    def newton_backward(ctx, grad):
        inv, = ctx.saved_tensors
        grad_mat = lib_ops.newton_inverse_backward(grad, inv)
        return grad_mat.to(ctx.mat_dtype), None, None

    torch.library.register_autograd(
        'soft_mm::newton_inverse', newton_backward, setup_context=newton_setup)

    def attention_setup(ctx, inputs, output):
        q, landmarks, v, _, norm = inputs
        _, kernel_ql, kernel_ll, inv, context = output
        ctx.norm = norm
        # The four auxiliary outputs exist only to be saved here.
        ctx.mark_non_differentiable(kernel_ql, kernel_ll, inv, context)
        # Their gradients would otherwise arrive as zero tensors, one of
        # them n x m: the largest single allocation of the backward.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(q, landmarks, v, kernel_ql, kernel_ll, inv,
                              context)

    @first_order_only("soft_attention(impl='ext')")
    def attention_backward(ctx, grad_out, *unused_aux_grads):
        if grad_out is None:  # not materialised: nothing flows back
            return None, None, None, None, None
        q, landmarks, v, kernel_ql, kernel_ll, inv, context = \
            ctx.saved_tensors
        grads = lib_ops.soft_attention_backward(grad_out, q, landmarks, v,
                                                kernel_ql, kernel_ll, inv,
                                                context, ctx.norm)
        return (grads[0].to(q.dtype), grads[1].to(landmarks.dtype),
                grads[2].to(v.dtype), None, None)

    torch.library.register_autograd(
        'soft_mm::soft_attention_forward',
        attention_backward,
        setup_context=attention_setup)


if _ext is not None:
    _register()


def extension():
    """The loaded ``soft_mm._ext`` module (its pybind functions: the ATen
    kernels, the CPU instruction set, ...), or None when it did not load."""
    return _ext


class ExtBackend(Backend):
    """The kernels of ``soft_mm._ext`` for the inputs' device."""

    name = 'ext'

    def unavailable_reason(self, device_type: str) -> Optional[str]:
        if _ext is None:
            return ('soft_mm._ext is not available (build it with `python '
                    f'setup.py build_ext --inplace`): {EXT_ERROR}')
        if device_type not in ext_device_types():
            return (f'soft_mm._ext was built without {device_type} kernels '
                    f'(built for {ext_device_types()}); rebuild on a machine '
                    'with the toolkit (FORCE_CUDA=1 / FORCE_NPU=1)')
        return None

    def attention(self, q, landmarks, v, newton_iters, norm):
        return torch.ops.soft_mm.soft_attention_forward(
            q, landmarks, v, newton_iters, norm)[0]

    def gaussian_kernel(self, x, y):
        lead = x.shape[:-2]
        out = torch.ops.soft_mm.gaussian_kernel(
            x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:]))
        return out.view(*lead, x.shape[-2], y.shape[-2])

    def newton_inverse(self, mat, iters, ridge):
        out = torch.ops.soft_mm.newton_inverse(
            mat.reshape(-1, *mat.shape[-2:]), iters, ridge)
        return out.view(mat.shape)


def _require_ext() -> None:
    if _ext is None:
        raise RuntimeError(ExtBackend().unavailable_reason('cpu'))


def set_cpu_isa(isa: str) -> bool:
    """Select the CPU kernels' instruction set (``'avx2'`` or ``'base'``).

    For tests and benchmarks; returns False if this CPU lacks ``isa``.
    """
    _require_ext()
    return _ext.set_cpu_isa(isa)


def get_cpu_isa() -> str:
    """The instruction set of the active CPU kernels."""
    _require_ext()
    return _ext.get_cpu_isa()
