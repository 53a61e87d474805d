# Copyright (c) soft_mm contributors. All rights reserved.
"""Build-time argument checks of the SOFT layers: each error names the
argument (or arch key) and what it got, before any forward runs."""
import numbers
from typing import Any, Optional, Sequence

from soft_mm.ops import DEVICE_IMPLS, IMPLS, impl_unusable_reason


def is_int(value: Any) -> bool:
    """An integer that is not a bool (``True`` is not a head count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(owner: str, name: str, value: Any, low: int = 1,
              odd: bool = False) -> int:
    """``value`` must be an int ``>= low`` (and odd if ``odd``)."""
    kind = 'an odd int' if odd else 'an int'
    if not is_int(value):
        raise TypeError(f'{owner}: {name} must be {kind} >= {low}, got '
                        f'{value!r} ({type(value).__name__})')
    if value < low or (odd and value % 2 == 0):
        raise ValueError(f'{owner}: {name} must be {kind} >= {low}, got '
                         f'{value!r}')
    return int(value)


def check_int_list(owner: str, name: str, value: Any, length: int,
                   low: int = 1, odd: bool = False) -> list:
    """``value`` must be a list/tuple of ``length`` ints ``>= low``."""
    kind = 'odd ints' if odd else 'ints'
    if not isinstance(value, (list, tuple)):
        raise TypeError(f'{owner}: {name} must be a list of {length} {kind} '
                        f'>= {low}, got {value!r} ({type(value).__name__})')
    if len(value) != length:
        raise ValueError(f'{owner}: {name} needs {length} values, got '
                         f'{list(value)}')
    return [check_int(owner, f'{name}[{i}]', v, low, odd)
            for i, v in enumerate(value)]


def check_real(owner: str, name: str, value: Any, low: float = 0.,
               high: Optional[float] = None, low_open: bool = False,
               high_open: bool = False) -> float:
    """``value`` must be a real number in the given interval."""
    interval = (('(' if low_open else '[') + f'{low}, ' +
                (f'{high}' if high is not None else 'inf') +
                (')' if high_open or high is None else ']'))
    if not is_real(value):
        raise TypeError(f'{owner}: {name} must be a number in {interval}, '
                        f'got {value!r} ({type(value).__name__})')
    below = value <= low if low_open else value < low
    if high is None:  # the interval is open at infinity
        above = value == float('inf')
    else:
        above = value >= high if high_open else value > high
    if below or above or value != value:  # NaN is in no interval
        raise ValueError(f'{owner}: {name} must be in {interval}, got '
                         f'{value!r}')
    return value


def check_rate(owner: str, name: str, value: Any) -> float:
    """A drop rate in ``[0, 1)``: at 1, DropPath divides by ``1 - rate``."""
    return check_real(owner, name, value, 0., 1., high_open=True)


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f'{owner}: {name} must be a bool, got {value!r} '
                        f'({type(value).__name__})')
    return value


def check_choice(owner: str, name: str, value: Any,
                 choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f'{owner}: unknown {name} {value!r}, choose from '
                         f'{tuple(choices)}')
    return value


def check_act_cfg(owner: str, name: str, value: Any) -> dict:
    if not isinstance(value, dict) or 'type' not in value:
        raise TypeError(f"{owner}: {name} must be a dict with a 'type' key, "
                        f'got {value!r}')
    return value


def check_heads(owner: str, embed_dims: Any, num_heads: Any) -> None:
    """``embed_dims`` and ``num_heads`` are ints >= 1, the first divisible
    by the second."""
    check_int(owner, 'embed_dims', embed_dims)
    check_int(owner, 'num_heads', num_heads)
    if embed_dims % num_heads:
        raise ValueError(f'{owner}: embed_dims {embed_dims} is not '
                         f'divisible by num_heads {num_heads}')


def check_landmark_grid(owner: str, value: Any):
    """``None``, an int ``>= 1`` or a pair of them; returns None or a pair."""
    if value is None:
        return None
    if is_int(value):
        value = (value, value)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f'{owner}: landmark_grid must be None, an int >= 1 '
                        f'or a pair (gh, gw) of them, got {value!r}')
    return tuple(check_int(owner, f'landmark_grid[{i}]', v)
                 for i, v in enumerate(value))


def check_attn_impl(owner: str, value: Any) -> str:
    """A known implementation of the SOFT attention op that can run here
    (the rules are :func:`soft_mm.ops.impl_unusable_reason`'s)."""
    if value not in DEVICE_IMPLS:  # deprecated spellings: warned below
        check_choice(owner, 'attn_impl', value, IMPLS)
    why = impl_unusable_reason(value)
    if why is not None:
        raise ValueError(f'{owner}: attn_impl={value!r} but {why}; use '
                         "attn_impl='auto'")
    return value
