# Copyright (c) soft_mm contributors. All rights reserved.
"""Argument checks of the public SOFT attention functions: each runs once,
at the public entry, before any backend is chosen; the error names the
argument and what it got."""
from torch import Tensor


def check_attention_inputs(q: Tensor, landmarks: Tensor, v: Tensor) -> None:
    """Raise a clear error for inputs the op cannot take.

    Args:
        q (Tensor): ``(B, h, n, d)``.
        landmarks (Tensor): ``(B, h, m, d)``.
        v (Tensor): ``(B, h, n, dv)``.
    """
    named = dict(q=q, landmarks=landmarks, v=v)
    for name, t in named.items():
        if not isinstance(t, Tensor):
            raise TypeError(f'soft_attention: {name} must be a Tensor, got '
                            f'{type(t).__name__}')
        if t.dim() != 4:
            raise ValueError(f'soft_attention: {name} must be 4-D '
                             f'(B, h, L, d), got shape {tuple(t.shape)}')
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


def check_newton_iters(newton_iters: int, name: str = 'newton_iters',
                       owner: str = 'soft_attention') -> None:
    """Raise a clear error unless the iteration count is an int >= 0.

    Args:
        newton_iters (int): Newton iterations asked for.
        name (str): The argument's name, for the message.
        owner (str): The function, for the message.
    """
    if (isinstance(newton_iters, bool) or not isinstance(newton_iters, int)
            or newton_iters < 0):
        raise ValueError(f'{owner}: {name} must be an int >= 0, got '
                         f'{newton_iters!r}')


def _check_batched(owner: str, arg: str, t, what: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f'{owner}: {arg} must be a Tensor, got '
                        f'{type(t).__name__}')
    if t.dim() < 2:
        raise ValueError(f'{owner}: {arg} must be {what} (at least 2-D), '
                         f'got shape {tuple(t.shape)}')
    if not t.is_floating_point():
        raise TypeError(f'{owner}: {arg} must be a floating point tensor, '
                        f'got {t.dtype}')


def check_point_sets(x: Tensor, y: Tensor) -> None:
    """Raise a clear error unless ``x`` ``(..., n, d)`` and ``y``
    ``(..., m, d)`` are float tensors on one device sharing the leading
    dims and ``d``."""
    owner = 'gaussian_kernel'
    _check_batched(owner, 'x', x, '(..., n, d)')
    _check_batched(owner, 'y', y, '(..., m, d)')
    if x.shape[:-2] != y.shape[:-2] or x.shape[-1] != y.shape[-1]:
        raise ValueError(f'{owner}: x (..., n, d) and y (..., m, d) must '
                         'share the leading dims and d, got '
                         f'{tuple(x.shape)} and {tuple(y.shape)}')
    if x.device != y.device:
        raise ValueError(f'{owner}: x and y must be on one device, got '
                         f'{x.device} and {y.device}')


def check_newton_matrix(mat: Tensor) -> None:
    """Raise a clear error unless ``mat`` is a float ``(..., m, m)`` with
    ``m >= 1``."""
    owner = 'newton_inverse'
    _check_batched(owner, 'mat', mat, '(..., m, m)')
    if mat.shape[-1] != mat.shape[-2] or mat.shape[-1] < 1:
        raise ValueError(f'{owner}: mat must be (..., m, m) with m >= 1, '
                         f'got shape {tuple(mat.shape)}')
