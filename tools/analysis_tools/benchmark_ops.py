# Copyright (c) soft_mm contributors. All rights reserved.
"""Benchmark the SOFT attention op: fused extension kernel vs the PyTorch
reference, eager and under ``torch.compile``, side by side.

For each SOFT-tiny attention stage (1-3) at each input size and batch, it
times forward and forward+backward (median of ``--repeat`` runs after
warm-up) and measures the peak memory of one run, then prints a markdown
table with the reference/fused ratios. A second table times the Newton
iteration alone (the extension's ``newton_inverse`` vs the reference's
op-by-op loop) on each stage's ``B * h`` landmark matrices.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the inputs;
on CPU the peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``) above the resident set before the run, with
glibc told to return every allocation >= 64 KiB to the OS (the script
re-executes itself with ``MALLOC_MMAP_THRESHOLD_``), so that RSS follows
the live tensors (``soft_mm.utils.benchmark.PeakMemory``). Linux only;
elsewhere memory is reported as nan.

Examples::

    # CPU, small: SOFT-tiny stages at 224, batch 1 and 4
    python tools/analysis_tools/benchmark_ops.py --device cpu --sizes 224 \\
        --batches 1 4
    # GPU, the full grid
    python tools/analysis_tools/benchmark_ops.py --device cuda \\
        --sizes 224 512 1024 --batches 1 64
"""
import argparse
import os
import statistics
import sys
import time

import torch

# Run from a checkout without installing: the repository root on the path.
sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

# SOFT-tiny stages with SOFT attention: (heads, landmark ratio sr); d = 32.
STAGES = {1: (2, 8), 2: (4, 4), 3: (10, 2)}
HEAD_DIM = 32


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--sizes', type=int, nargs='+', default=[224])
    parser.add_argument('--batches', type=int, nargs='+', default=[1])
    parser.add_argument('--stages', type=int, nargs='+', default=[1, 2, 3])
    parser.add_argument('--dtype', default='float32',
                        choices=['float32', 'float16', 'bfloat16'],
                        help='input dtype (half types run under autocast)')
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--norm', action='store_true', help='SOFT-Norm')
    parser.add_argument('--no-compile', action='store_true',
                        help='skip the torch.compile reference')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads for CPU runs')
    parser.add_argument('--no-newton', action='store_true',
                        help='skip the Newton-iteration-only table')
    return parser.parse_args()


def stage_shape(size, stage, batch):
    """(B, h, n, m, d) of a SOFT-tiny stage at a square input size."""
    heads, sr = STAGES[stage]
    res = size // (4 * 2**(stage - 1))
    return batch, heads, res * res, (res // sr)**2, HEAD_DIM


# ---- memory -------------------------------------------------------------


def peak_memory_mib(fn, device):
    """Peak memory (MiB) that one call of ``fn`` adds to what is live."""
    from soft_mm.utils.benchmark import PeakMemory
    with PeakMemory(device) as mem:
        fn()
    return mem.peak_bytes / 2**20


# ---- timing -------------------------------------------------------------


def median_ms(fn, device, repeat, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def make_runner(attn, q, lm, v, backward, autocast_dtype):
    """A closure running one forward (and backward) of ``attn``."""

    def run():
        with torch.autocast(q.device.type, dtype=autocast_dtype,
                            enabled=autocast_dtype is not None):
            out = attn(q, lm, v)
        if backward:
            out.float().sum().backward()
            q.grad = lm.grad = v.grad = None
        return None

    return run


def main():
    args = parse_args()
    device = torch.device(args.device)
    if (device.type == 'cpu' and os.access('/proc/self/clear_refs', os.W_OK)
            and 'MALLOC_MMAP_THRESHOLD_' not in os.environ):
        # Fixed mmap threshold: large frees go back to the OS, so RSS tracks
        # live tensors (glibc otherwise raises the threshold and keeps them).
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    if args.threads:
        torch.set_num_threads(args.threads)

    from soft_mm.ops import ext, soft_attention
    from soft_mm.ops.reference import soft_attention_reference
    from soft_mm.utils.benchmark import machine_name
    if device.type not in ext.ext_device_types():
        sys.exit(f'soft_mm._ext has no {device.type} kernels '
                 f'(built for {ext.ext_device_types()}): {ext.EXT_ERROR}')
    impl = device.type
    dtype = getattr(torch, args.dtype)
    autocast_dtype = None if dtype == torch.float32 else dtype

    def fused(q, lm, v):
        return soft_attention(q, lm, v, norm=args.norm, impl=impl)

    def eager(q, lm, v):
        return soft_attention_reference(q, lm, v, norm=args.norm)

    variants = [('fused', fused), ('reference', eager)]
    if not args.no_compile:
        # Re-created (and dynamo reset) per shape in bench_shape: one static
        # graph per shape and pass, never the recompile limit's eager fallback.
        variants.append(('ref+compile', eager))

    print(f'# soft_mm benchmark_ops: device={machine_name(device)}, '
          f'torch {torch.__version__}, dtype={args.dtype}, norm={args.norm}, '
          f'threads={torch.get_num_threads()}, median of {args.repeat}')
    header = ('| size | stage | B | h | n | m | pass | ' +
              ' | '.join(f'{name} ms' for name, _ in variants) + ' | ' +
              ' | '.join(f'{name} MiB' for name, _ in variants) +
              ' | ref/fused time | ref/fused mem |' +
              (' compiled/fused time |' if not args.no_compile else ''))
    print(header)
    print('|' + '---|' * (header.count('|') - 1))
    for size in args.sizes:
        for stage in args.stages:
            for batch in args.batches:
                shape = stage_shape(size, stage, batch)
                bench_shape(shape, size, stage, variants, device, dtype,
                            autocast_dtype, args)
    if not args.no_newton:
        bench_newton(device, args)


def bench_newton(device, args):
    """Time the 20-step Newton iteration alone: kernel vs reference loop."""
    from soft_mm.ops import ext
    from soft_mm.ops.reference import gaussian_kernel, newton_iterate
    print('\nNewton iteration alone (20 steps, float32, the stage\'s B*h '
          'landmark kernels), median ms:')
    print('| size | stage | B*h | m | kernel ms | reference ms | '
          'ref/kernel time |')
    print('|---|---|---|---|---|---|---|')
    seen = set()
    for size in args.sizes:
        for stage in args.stages:
            for batch in args.batches:
                b, h, _, m, d = stage_shape(size, stage, batch)
                if (b * h, m) in seen:
                    continue
                seen.add((b * h, m))
                gen = torch.Generator().manual_seed(0)
                lm = (torch.randn(b * h, m, d, generator=gen) * 0.3).to(device)
                mat = gaussian_kernel(lm, lm)
                times = []
                for fn in (lambda: ext.newton_inverse(mat),
                           lambda: newton_iterate(mat)):
                    try:
                        times.append(median_ms(fn, device, args.repeat,
                                               args.warmup))
                    except Exception as e:  # e.g. out of memory
                        print(f'<!-- newton failed at {(b * h, m)}: '
                              f'{type(e).__name__}: {str(e)[:200]} -->')
                        times.append(float('nan'))
                print(f'| {size} | {stage} | {b * h} | {m} | {times[0]:.3f} | '
                      f'{times[1]:.3f} | {times[1] / times[0]:.2f}x |',
                      flush=True)


def bench_shape(shape, size, stage, variants, device, dtype, autocast_dtype,
                args):
    b, h, n, m, d = shape
    gen = torch.Generator().manual_seed(0)
    q = (torch.randn(b, h, n, d, generator=gen) * 0.3).to(device, dtype)
    lm = (torch.randn(b, h, m, d, generator=gen) * 0.3).to(device, dtype)
    v = torch.randn(b, h, n, d, generator=gen).to(device, dtype)
    for backward in (False, True):
        for t in (q, lm, v):
            t.requires_grad_(backward)
        times, mems = [], []
        for name, attn in variants:
            if name == 'ref+compile':
                torch._dynamo.reset()
                attn = torch.compile(attn, dynamic=False)
            run = make_runner(attn, q, lm, v, backward, autocast_dtype)
            try:
                times.append(median_ms(run, device, args.repeat,
                                       args.warmup))
                mems.append(peak_memory_mib(run, device))
            except Exception as e:  # e.g. out of memory: report, go on
                print(f'<!-- {name} failed at {shape}: '
                      f'{type(e).__name__}: {str(e)[:200]} -->')
                times.append(float('nan'))
                mems.append(float('nan'))
        row = [size, stage, b, h, n, m, 'fwd+bwd' if backward else 'fwd']
        row += [f'{t:.2f}' for t in times] + [f'{x:.1f}' for x in mems]
        row += [f'{times[1] / times[0]:.2f}x', f'{mems[1] / mems[0]:.2f}x'
                if mems[0] > 0 else 'n/a']
        if len(times) > 2:
            row.append(f'{times[2] / times[0]:.2f}x')
        print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)


if __name__ == '__main__':
    main()
