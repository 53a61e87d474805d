# Copyright (c) soft_mm contributors. All rights reserved.
"""Launch helpers shared by the Triton kernel modules."""
import os
from typing import Tuple

import torch
import triton
import triton.language as tl

#: Set to 1 (tests do) to allocate every kernel output with NaN instead of
#: uninitialised memory: an element a kernel forgets to write then fails the
#: comparison with the reference instead of passing as a stale value.
POISON_ENV = 'SOFT_MM_TRITON_POISON'

_TL_DTYPES = {torch.float32: tl.float32, torch.float64: tl.float64}


def new_output(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """An output buffer: ``empty``, or NaN-filled under ``POISON_ENV``."""
    if os.environ.get(POISON_ENV) == '1':
        return torch.full(shape, float('nan'), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def tl_dtype(dtype: torch.dtype):
    """The Triton dtype of a compute dtype (float32 or float64)."""
    return _TL_DTYPES[dtype]


def block(size: int, lo: int = 16) -> int:
    """A power-of-two block covering ``size``; at least 16, the smallest
    operand ``tl.dot`` accepts."""
    return max(lo, triton.next_power_of_2(size))


def num_splits(tiles: int, programs: int, device: torch.device) -> int:
    """How many programs share one reduction over ``tiles`` tiles.

    Splitting the n-reduction over several programs (partial sums added
    afterwards, deterministic) keeps the GPU busy when ``B * h`` is small.
    On the interpreter two splits keep that code path exercised.
    """
    if device.type != 'cuda':
        return max(1, min(tiles, 2))
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(tiles, -(-2 * sms // max(programs, 1))))


def split_scalar(value: float) -> Tuple[float, float]:
    """``value`` as ``hi + lo`` of two float32 numbers.

    Triton passes Python floats as float32; a float64 kernel rebuilds the
    constant as ``hi + lo`` (~48 bits), a float32 one gets ``hi`` exactly as
    PyTorch rounds the constant.
    """
    hi = float(torch.tensor(value, dtype=torch.float32))
    lo = float(torch.tensor(value - hi, dtype=torch.float32))
    return hi, lo
