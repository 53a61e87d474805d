# Copyright (c) soft_mm contributors. All rights reserved.
"""Peak memory of the fused CPU op against the reference, forward+backward.

The peak is replayed from the profiler's allocation events (every tensor
allocation and free of one run), so it counts bytes handed out by ATen's
allocator and is deterministic, unlike the resident set that
``benchmark_ops.py`` reports. No timing is asserted.
"""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from soft_mm.ops import ext, soft_attention
from soft_mm.ops.reference import soft_attention_reference

needs_ext = pytest.mark.skipif(
    not ext.ext_available(), reason='soft_mm._ext not built')

# SOFT-tiny attention stages at 224 (B, h, n, m, d), batch 1 and 8; stage 3
# with batch 8 is the tightest (m > d, so the m x m work is a larger share).
STAGE_SHAPES = [(1, 2, 3136, 49, 32), (8, 4, 784, 49, 32),
                (8, 10, 196, 49, 32)]


def allocation_events(fn):
    """Byte counts of the allocations (> 0) and frees (< 0) of ``fn()``, in
    time order."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        fn()
    events = sorted((ev.start_ns(), ev.nbytes())
                    for ev in p.profiler.kineto_results.events()
                    if ev.name() == '[memory]')
    assert events, 'the profiler recorded no allocations'
    return [nbytes for _, nbytes in events]


def allocation_peak_bytes(fn):
    """Highest total of live tensor bytes allocated during ``fn()``."""
    live = peak = 0
    for nbytes in allocation_events(fn):
        live += nbytes
        peak = max(peak, live)
    return peak


def fused(q, lm, v, *, norm):
    return soft_attention(q, lm, v, norm=norm, impl='ext')


def fwd_bwd(attn, shape, norm):
    b, h, n, m, d = shape
    gen = torch.Generator().manual_seed(0)
    q = (torch.randn(b, h, n, d, generator=gen) * 0.3).requires_grad_()
    lm = (torch.randn(b, h, m, d, generator=gen) * 0.3).requires_grad_()
    v = torch.randn(b, h, n, d, generator=gen).requires_grad_()
    grad_out = torch.randn(b, h, n, d, generator=gen)

    def run():
        attn(q, lm, v, norm=norm).backward(grad_out)

    run()  # warm-up: one-off allocations (thread pools, packing buffers)
    q.grad = lm.grad = v.grad = None
    return run


@needs_ext
@pytest.mark.parametrize('norm', [False, True])
@pytest.mark.parametrize('shape', STAGE_SHAPES)
def test_fused_fwd_bwd_peak_not_above_reference(shape, norm):
    fused_peak = allocation_peak_bytes(fwd_bwd(fused, shape, norm))
    ref_peak = allocation_peak_bytes(
        fwd_bwd(soft_attention_reference, shape, norm))
    assert fused_peak <= ref_peak, (
        f'fused op peaks at {fused_peak / 2**20:.2f} MiB, reference at '
        f'{ref_peak / 2**20:.2f} MiB for {shape}, norm={norm}')


@needs_ext
def test_unused_auxiliary_outputs_get_no_zero_gradients():
    """The op's saved-for-backward outputs must not get materialised (n x m)
    zero gradients: the backward then allocates a single n x m tensor."""
    b, h, n, m, d = 1, 2, 3136, 49, 32
    n_by_m = b * h * n * m * 4
    big = [nbytes for nbytes in allocation_events(
        fwd_bwd(fused, (b, h, n, m, d), False)) if nbytes == n_by_m]
    # One A in the forward, one dA (turned into E in place) in the backward.
    assert len(big) == 2, f'{len(big)} n x m allocations, expected 2'
