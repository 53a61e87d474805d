# Copyright (c) soft_mm contributors. All rights reserved.
"""Argument checks of the public SOFT attention functions: each runs once,
at the public entry, before any backend is chosen; the error names the
argument and what it got."""
import math
import numbers

import torch
from torch import Tensor

from .reference import NEWTON_ALPHA_SCALE, max_row_sum


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
                       owner: str = 'soft_attention') -> int:
    """Raise a clear error unless the iteration count is an int >= 0.

    Args:
        newton_iters (int): Newton iterations asked for (any integer type,
            NumPy's included; not a bool).
        name (str): The argument's name, for the message.
        owner (str): The function, for the message.

    Returns:
        int: The count as a Python int.
    """
    if (isinstance(newton_iters, bool)
            or not isinstance(newton_iters, numbers.Integral)
            or newton_iters < 0):
        raise ValueError(f'{owner}: {name} must be an int >= 0, got '
                         f'{newton_iters!r}')
    return int(newton_iters)


def check_norm(norm, owner: str = 'soft_attention') -> bool:
    """``norm`` must be a bool (a string such as ``'False'`` would turn
    SOFT-Norm on)."""
    if not isinstance(norm, bool):
        raise TypeError(f'{owner}: norm must be a bool, got {norm!r} '
                        f'({type(norm).__name__})')
    return norm


#: Largest ridge, relative to the largest row sum ``R`` of ``|mat|``, for
#: which the iteration provably converges: its step ``alpha = s / R^2``
#: comes from ``mat`` (the model's definition), and ``V <- 2V - VPV`` on
#: ``P = mat + ridge * I`` converges while ``alpha * lambda_max(P)^2 < 2``,
#: ``lambda_max(P) <= R + ridge``.
MAX_RELATIVE_RIDGE = math.sqrt(2 / NEWTON_ALPHA_SCALE) - 1


def check_newton_ridge(mat: Tensor, ridge) -> float:
    """Raise a clear error unless ``ridge`` is a finite real >= 0 with which
    the iteration on ``mat`` converges (see :data:`MAX_RELATIVE_RIDGE`).

    Reads the largest row sum of ``mat`` (one reduction and a host sync).

    Returns:
        float: The ridge as a Python float.
    """
    owner = 'newton_inverse'
    if (isinstance(ridge, bool) or not isinstance(ridge, numbers.Real)
            or not math.isfinite(ridge) or ridge < 0):
        raise ValueError(f'{owner}: ridge must be a finite number >= 0, '
                         f'got {ridge!r}')
    if mat.numel() == 0:
        return float(ridge)
    with torch.no_grad():
        # Each matrix has its own step: the bound is the smallest one's.
        row_sums = max_row_sum(mat)
        row_sum = row_sums.amin().item()
        finite = bool(row_sums.isfinite().all())
    if not finite or row_sum == 0:
        raise ValueError(f'{owner}: the step alpha = '
                         f'{NEWTON_ALPHA_SCALE:g} / (largest row sum of '
                         f'|mat|)^2 needs that row sum finite and > 0 in '
                         f'every matrix, got {row_sum} (smallest)')
    if ridge > MAX_RELATIVE_RIDGE * row_sum:
        raise ValueError(
            f'{owner}: ridge {ridge:g} is too large for these matrices: the '
            'step alpha comes from each matrix (the smallest largest row '
            f'sum is {row_sum:.4g}), and the iteration is sure to converge '
            'only '
            f'for ridge <= {MAX_RELATIVE_RIDGE:.4f} x that row sum '
            f'({MAX_RELATIVE_RIDGE * row_sum:.4g} here); beyond it, it '
            'diverges to inf as soon as the largest eigenvalue of mat is '
            'near that row sum')
    return float(ridge)


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
