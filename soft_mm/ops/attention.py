# Copyright (c) soft_mm contributors. All rights reserved.
"""Public API of the SOFT attention op: input checks and implementation choice."""
import warnings
from typing import Optional

import torch
from torch import Tensor

from . import ext
from . import triton as triton_impl
from .checks import check_attention_inputs, check_newton_iters
from .reference import (NEWTON_ITERS, compute_dtype,
                        soft_attention_reference)

#: Implementations a caller may ask for: ``'auto'`` picks the fastest one
#: that runs on the inputs' device, the others force one and raise if it
#: cannot run. See :func:`soft_attention` and ``docs/ops.md``.
IMPLS = ('auto', 'cpu', 'cuda', 'npu', 'triton', 'reference')

# Device types 'auto' already warned about falling back on (warn once each).
_warned_fallback = set()


def resolve_impl(impl: str,
                 device_type: str,
                 dtype: Optional[torch.dtype] = None) -> str:
    """The implementation that will run: ``'ext'``, ``'triton'`` or
    ``'reference'``.

    ``'auto'``: on CUDA the Triton kernels when Triton works there (not for
    float64 inputs, which the C++ kernels handle natively), else the
    extension's kernel for the device, else the reference with one warning
    per device type. CPU tensors never go to Triton under ``'auto'``.

    Args:
        impl (str): One of :data:`IMPLS`.
        device_type (str): ``device.type`` of the inputs.
        dtype (torch.dtype, optional): The inputs' compute dtype, if known.

    Returns:
        str: ``'ext'``, ``'triton'`` or ``'reference'``.
    """
    if impl not in IMPLS:
        raise ValueError(f'soft_attention: unknown impl {impl!r}, '
                         f'choose from {IMPLS}')
    if impl == 'reference':
        return 'reference'
    if impl == 'triton':
        triton_impl.require(device_type)
        return 'triton'
    has_kernel = device_type in ext.ext_device_types()
    if impl == 'auto':
        if (device_type == 'cuda' and dtype != torch.float64
                and triton_impl.triton_works(device_type)):
            return 'triton'
        if has_kernel:
            return 'ext'
        if device_type == 'cuda' and triton_impl.triton_works(device_type):
            return 'triton'
        if device_type not in _warned_fallback:
            _warned_fallback.add(device_type)
            why = (ext.EXT_ERROR if not ext.ext_available() else
                   f'it was built without {device_type} kernels')
            warnings.warn(
                f'soft_attention: no soft_mm._ext kernel for {device_type} '
                f'({why}); using the slower pure-PyTorch reference. Build the '
                'extension with `python setup.py build_ext --inplace` (or '
                "pass impl='reference' to silence this).")
        return 'reference'
    if impl != device_type:
        raise ValueError(f'soft_attention: impl={impl!r} needs inputs on '
                         f'{impl}, got {device_type} tensors')
    if not ext.ext_available():
        raise RuntimeError(f'soft_attention: impl={impl!r} needs the '
                           f'soft_mm._ext extension: {ext.EXT_ERROR}')
    if not has_kernel:
        raise RuntimeError(
            f'soft_attention: impl={impl!r} but soft_mm._ext was built '
            f'without {impl} kernels (built for {ext.ext_device_types()}); '
            'rebuild on a machine with the toolkit (FORCE_CUDA=1 / '
            'FORCE_NPU=1)')
    return 'ext'


def soft_attention(q: Tensor,
                   landmarks: Tensor,
                   v: Tensor,
                   *,
                   newton_iters: int = NEWTON_ITERS,
                   norm: bool = False,
                   impl: str = 'auto') -> Tensor:
    """SOFT attention ``(A B^-1)(A^T V)`` with Gaussian kernels.

    Args:
        q (Tensor): Scaled queries (= keys), ``(B, h, n, d)``.
        landmarks (Tensor): Sampled queries, ``(B, h, m, d)``.
        v (Tensor): Values, ``(B, h, n, dv)``.
        newton_iters (int): Newton iterations for ``B^-1``. Defaults to 20.
        norm (bool): SOFT-Norm (symmetric degree normalisation of ``B^-1``).
            Defaults to False.
        impl (str): ``'auto'`` (see :func:`resolve_impl`), ``'cpu'``,
            ``'cuda'``, ``'npu'`` (that kernel of ``soft_mm._ext``, or an
            error), ``'triton'`` (the Triton kernels: CUDA tensors, or CPU
            tensors under ``TRITON_INTERPRET=1``) or ``'reference'`` (pure
            PyTorch). Defaults to ``'auto'``.

    Returns:
        Tensor: ``(B, h, n, dv)`` in the dtype of ``v``.
    """
    check_attention_inputs(q, landmarks, v)
    check_newton_iters(newton_iters)
    chosen = resolve_impl(impl, q.device.type,
                          compute_dtype(q, landmarks, v))
    if chosen == 'ext':
        return ext.soft_attention_fused(q, landmarks, v, newton_iters, norm)
    if chosen == 'triton':
        if impl != 'auto':
            return triton_impl.soft_attention_triton(q, landmarks, v,
                                                     newton_iters, norm)
        try:
            return triton_impl.soft_attention_triton(q, landmarks, v,
                                                     newton_iters, norm)
        except triton_impl.compile_errors() as e:
            # A shape the self-check did not cover cannot compile or does
            # not fit the device: 'auto' falls back for good, once warned.
            # (Forward only: a backward that fails has no fallback here.)
            triton_impl.disable(q.device.type, f'{type(e).__name__}: {e}')
            return soft_attention(q, landmarks, v, newton_iters=newton_iters,
                                  norm=norm, impl=impl)
    return soft_attention_reference(q, landmarks, v, newton_iters, norm)
