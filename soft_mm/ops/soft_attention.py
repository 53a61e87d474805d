# Copyright (c) soft_mm contributors. All rights reserved.
"""Public API of the SOFT attention op: input checks and implementation choice."""
import warnings

from torch import Tensor

from . import ext
from .reference import NEWTON_ITERS, soft_attention_reference

#: Implementations a caller may ask for: ``'auto'`` picks the extension's
#: kernel for the inputs' device if it was built, else the reference; the
#: others force one and raise if it cannot run.
IMPLS = ('auto', 'cpu', 'cuda', 'npu', 'reference')

# Device types 'auto' already warned about falling back on (warn once each).
_warned_fallback = set()


def resolve_impl(impl: str, device_type: str) -> str:
    """The implementation that will run: ``'ext'`` or ``'reference'``.

    Args:
        impl (str): One of :data:`IMPLS`.
        device_type (str): ``device.type`` of the inputs.

    Returns:
        str: ``'ext'`` or ``'reference'``.
    """
    if impl not in IMPLS:
        raise ValueError(f'soft_attention: unknown impl {impl!r}, '
                         f'choose from {IMPLS}')
    if impl == 'reference':
        return 'reference'
    has_kernel = device_type in ext.ext_device_types()
    if impl == 'auto':
        if has_kernel:
            return 'ext'
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


def check_attention_inputs(q: Tensor, landmarks: Tensor, v: Tensor) -> None:
    """Raise a clear error for inputs the op cannot take.

    Args:
        q (Tensor): ``(B, h, n, d)``.
        landmarks (Tensor): ``(B, h, m, d)``.
        v (Tensor): ``(B, h, n, dv)``.
    """
    named = dict(q=q, landmarks=landmarks, v=v)
    for name, t in named.items():
        if t.dim() != 4:
            raise ValueError(f'soft_attention: {name} must be 4-D (B, h, L, d), '
                             f'got shape {tuple(t.shape)}')
        if not t.is_floating_point():
            raise TypeError(f'soft_attention: {name} must be a floating point '
                            f'tensor, got {t.dtype}')
    devices = {t.device for t in named.values()}
    if len(devices) > 1:
        raise ValueError('soft_attention: q, landmarks and v must be on one '
                         f'device, got {sorted(map(str, devices))}')
    if q.shape[:2] != landmarks.shape[:2] or q.shape[:2] != v.shape[:2]:
        raise ValueError('soft_attention: q, landmarks and v must share '
                         f'(B, h); got {tuple(q.shape)}, '
                         f'{tuple(landmarks.shape)}, {tuple(v.shape)}')
    if q.shape[-1] != landmarks.shape[-1]:
        raise ValueError('soft_attention: q and landmarks must share d; got '
                         f'{q.shape[-1]} and {landmarks.shape[-1]}')
    if q.shape[2] != v.shape[2]:
        raise ValueError('soft_attention: q and v must share n; got '
                         f'{q.shape[2]} and {v.shape[2]}')
    if landmarks.shape[2] < 1:
        raise ValueError('soft_attention: at least one landmark is needed')


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
        impl (str): ``'auto'`` (the extension's kernel for the inputs'
            device if built, else the reference with one warning),
            ``'cpu'``, ``'cuda'``, ``'npu'`` (that kernel, or an error) or
            ``'reference'`` (pure PyTorch). Defaults to ``'auto'``.

    Returns:
        Tensor: ``(B, h, n, dv)`` in the dtype of ``v``.
    """
    if impl not in IMPLS:
        raise ValueError(f'soft_attention: unknown impl {impl!r}, '
                         f'choose from {IMPLS}')
    check_attention_inputs(q, landmarks, v)
    if newton_iters < 0:
        raise ValueError('soft_attention: newton_iters must be >= 0, got '
                         f'{newton_iters}')
    if resolve_impl(impl, q.device.type) == 'ext':
        return ext.soft_attention_fused(q, landmarks, v, newton_iters, norm)
    return soft_attention_reference(q, landmarks, v, newton_iters, norm)
