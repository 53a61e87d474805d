# Copyright (c) soft_mm contributors. All rights reserved.
"""Launch helpers shared by the Triton kernel modules."""
import contextlib
import os
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

#: Set to 1 (tests do) to allocate every kernel output with NaN instead of
#: uninitialised memory: an element a kernel forgets to write then fails the
#: comparison with the reference instead of passing as a stale value.
POISON_ENV = 'SOFT_MM_TRITON_POISON'

_TL_DTYPES = {torch.float32: tl.float32, torch.float64: tl.float64}

#: Choose launch configurations as on a GPU with this many SMs even for CPU
#: tensors. Set only by ``tools/gpu/compile_triton.py``, which compiles the
#: kernels ahead of time (for sm_90, no GPU needed) at the configurations
#: the launchers pick on a GPU.
AOT_SMS: Optional[int] = None


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


#: Shared memory one block may use on sm_90 (H100 / H200; opt-in maximum,
#: bytes): what the configurations compiled ahead of time are chosen for.
SM90_SHARED = 232448


def shared_limit(device: torch.device) -> Optional[int]:
    """Shared memory one block may use on ``device`` (bytes), or None when
    the launches are not for a GPU (the interpreter has no such limit)."""
    if AOT_SMS is not None:
        return SM90_SHARED
    if device.type != 'cuda':
        return None
    props = torch.cuda.get_device_properties(device)
    return getattr(props, 'shared_memory_per_block_optin', 101376)


def fit_tile(footprint, limit: int, blocks, stages=(3, 1)):
    """The first ``(block, num_stages)`` whose ``footprint(block, stages)``
    (estimated shared memory, bytes) stays within 90% of ``limit``; None if
    none does.

    Triton stages every ``tl.dot`` operand through shared memory (and, with
    ``num_stages > 1``, the loads of a loop in flight); a block asking for
    more than the device has fails at launch (``OutOfResources``). The
    estimates are calibrated upper bounds of ``compiled.metadata.shared``
    (``tools/gpu/compile_triton.py``).
    """
    for blk in blocks:
        for st in stages:
            if footprint(blk, st) <= 0.9 * limit:
                return blk, st
    return None


def gpu_sms(device: torch.device) -> Optional[int]:
    """SM count when launches are configured for a GPU, else None (the
    interpreter's configuration)."""
    if AOT_SMS is not None:
        return AOT_SMS
    if device.type == 'cuda':
        return torch.cuda.get_device_properties(device).multi_processor_count
    return None


def num_splits(tiles: int, programs: int, device: torch.device) -> int:
    """How many programs share one reduction over ``tiles`` tiles.

    Splitting the n-reduction over several programs (partial sums added
    afterwards, deterministic) keeps the GPU busy when ``B * h`` is small.
    On the interpreter two splits keep that code path exercised.
    """
    sms = gpu_sms(device)
    if sms is None:
        return max(1, min(tiles, 2))
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


def device_guard(device: torch.device):
    """Make ``device`` current for the launches in the block.

    Triton launches on the *current* CUDA device and stream, not on the
    device of the tensors it is given: inputs on ``cuda:1`` while ``cuda:0``
    is current would be read through the wrong context (an illegal address
    or, with peer access, silently slow). A no-op off CUDA.
    """
    if device.type == 'cuda':
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def check_int32_offsets(name: str, *tensors: torch.Tensor,
                        lead: int = 1) -> None:
    """Raise unless every element offset *within* a batch item fits int32.

    The kernels index each tensor as ``batch * stride (int64) + row *
    stride + col * stride``, the last two in int32 (cheaper registers);
    that overflows silently once one ``(rows, cols)`` slice spans 2^31
    elements. The leading ``lead`` dims are indexed in int64.
    """
    for t in tensors:
        span = sum((size - 1) * stride
                   for size, stride in zip(t.shape[lead:], t.stride()[lead:])
                   if size > 0)
        if span >= 2**31:
            raise ValueError(
                f'{name}: one matrix of a {tuple(t.shape)} tensor with '
                f'strides {t.stride()} spans {span} elements; the Triton '
                'kernels index within a matrix in int32 (< 2^31)')
