# Copyright (c) soft_mm contributors. All rights reserved.
"""Input checks shared by every implementation of the SOFT attention op."""
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


def check_newton_iters(newton_iters: int) -> None:
    """Raise a clear error unless ``newton_iters`` is an int >= 0.

    Args:
        newton_iters (int): Newton iterations asked for.
    """
    if (isinstance(newton_iters, bool) or not isinstance(newton_iters, int)
            or newton_iters < 0):
        raise ValueError('soft_attention: newton_iters must be an int >= 0, '
                         f'got {newton_iters!r}')
