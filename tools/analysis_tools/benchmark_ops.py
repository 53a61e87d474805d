# Copyright (c) soft_mm contributors. All rights reserved.
"""Benchmark the SOFT attention op: fused extension kernel (and, with
``--triton``, the Triton kernels) vs the PyTorch reference, eager and under
``torch.compile``, side by side.

For each SOFT-tiny attention stage (1-3; shapes from
``SOFT.arch_zoo['tiny']``) at each input size and batch, it times forward and
forward+backward (median of ``--repeat`` runs after warm-up), measures the
peak memory of one run and the forward's error against the reference, then
prints a markdown table with the reference/fused (and reference/triton)
ratios. A second table times the Newton iteration alone (the extension's
``newton_inverse_fused``, Triton's, and the reference's op-by-op loop) on
each stage's ``B * h`` landmark matrices.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the inputs;
on CPU the peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``) above the resident set before the run, with
glibc told to return every allocation >= 64 KiB to the OS (the script
re-executes itself with ``MALLOC_MMAP_THRESHOLD_``), so that RSS follows
the live tensors (``soft_mm.apis.benchmark.PeakMemory``). Linux only;
elsewhere memory is reported as nan.

Examples::

    # CPU, small: SOFT-tiny stages at 224, batch 1 and 4
    python tools/analysis_tools/benchmark_ops.py --device cpu --sizes 224 \\
        --batches 1 4
    # GPU, the full grid
    python tools/analysis_tools/benchmark_ops.py --device cuda \\
        --sizes 224 512 1024 --batches 1 64
    # GPU, the Triton targets (SOFT-tiny at 224, batch 64 and 128)
    python tools/analysis_tools/benchmark_ops.py --device cuda --triton \\
        --sizes 224 --batches 64 128 --no-compile
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

# SOFT-tiny's arch, used only where soft_mm.models cannot be imported (the
# torch-only GPU image of tools/gpu/check.sh has no OpenMMLab packages);
# tests/test_tools/test_gpu_tools.py checks it equals SOFT.arch_zoo['tiny']
# and SOFT.arch_defaults['sr_ratios'].
_TINY_FALLBACK = (dict(embed_dims=[64, 128, 320, 512], num_heads=[2, 4, 10,
                                                                   16]),
                  [8, 4, 2])


def tiny_stages():
    """``{stage: (heads, sr, head_dim)}`` of SOFT-tiny's SOFT-attention
    stages (1-3), from ``SOFT.arch_zoo['tiny']``."""
    try:
        from soft_mm.models.backbones import SOFT
    except ImportError:  # OpenMMLab missing: torch-only machine
        arch, sr_ratios = _TINY_FALLBACK
    else:
        arch = SOFT.arch_zoo['tiny']
        sr_ratios = SOFT.arch_defaults['sr_ratios']
    return {
        i + 1: (arch['num_heads'][i], sr,
                arch['embed_dims'][i] // arch['num_heads'][i])
        for i, sr in enumerate(sr_ratios)
    }


def parse_args(argv=None):
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
    parser.add_argument('--triton', action='store_true',
                        help="add the Triton kernels (impl='triton')")
    return parser.parse_args(argv)


def stage_shape(size, stage, batch, stages=None):
    """(B, h, n, m, d) of a SOFT-tiny stage at a square input size."""
    heads, sr, head_dim = (stages or tiny_stages())[stage]
    res = size // (4 * 2**(stage - 1))
    return batch, heads, res * res, (res // sr)**2, head_dim


# ---- memory -------------------------------------------------------------


def peak_memory_mib(fn, device):
    """Peak memory (MiB) that one call of ``fn`` adds to what is live."""
    from soft_mm.apis.benchmark import PeakMemory
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


def main(argv=None):
    args = parse_args(argv)
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
    from soft_mm.apis.benchmark import machine_name
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

    def triton(q, lm, v):
        return soft_attention(q, lm, v, norm=args.norm, impl='triton')

    variants = [('fused', fused), ('reference', eager)]
    if not args.no_compile:
        # Re-created (and dynamo reset) per shape in bench_shape: one static
        # graph per shape and pass, never the recompile limit's eager fallback.
        variants.append(('ref+compile', eager))
    if args.triton:
        from soft_mm.ops import triton as triton_impl
        triton_impl.require(device.type)
        variants.append(('triton', triton))

    print(f'# soft_mm benchmark_ops: device={machine_name(device)}, '
          f'torch {torch.__version__}, dtype={args.dtype}, norm={args.norm}, '
          f'threads={torch.get_num_threads()}, median of {args.repeat}')
    header = ('| size | stage | B | h | n | m | pass | ' +
              ' | '.join(f'{name} ms' for name, _ in variants) + ' | ' +
              ' | '.join(f'{name} MiB' for name, _ in variants) +
              ' | ref/fused time | ref/fused mem |' +
              (' compiled/fused time |' if not args.no_compile else '') +
              (' ref/triton time | ref/triton mem | fused/triton time |'
               if args.triton else '') + ' fused err |' +
              (' triton err |' if args.triton else ''))
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
    """Time the 20-step Newton iteration alone: kernels vs reference loop."""
    from soft_mm.ops import ext
    from soft_mm.ops.reference import gaussian_kernel, newton_iterate
    fns = [('kernel', ext.newton_inverse_fused), ('reference', newton_iterate)]
    if args.triton:
        from soft_mm.ops.triton import newton_inverse_triton
        fns.append(('triton', newton_inverse_triton))
    print('\nNewton iteration alone (20 steps, float32, the stage\'s B*h '
          'landmark kernels), median ms:')
    header = ('| size | stage | B*h | m | ' +
              ' | '.join(f'{name} ms' for name, _ in fns) +
              ' | ref/kernel time |' +
              (' ref/triton time | triton err |' if args.triton else ''))
    print(header)
    print('|' + '---|' * (header.count('|') - 1))
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
                for name, fn in fns:
                    try:
                        times.append(median_ms(lambda: fn(mat), device,
                                               args.repeat, args.warmup))
                    except Exception as e:  # e.g. out of memory
                        print(f'<!-- newton {name} failed at {(b * h, m)}: '
                              f'{type(e).__name__}: {str(e)[:200]} -->')
                        times.append(float('nan'))
                row = [size, stage, b * h, m] + [f'{t:.3f}' for t in times]
                row.append(f'{times[1] / times[0]:.2f}x')
                if args.triton:
                    want = newton_iterate(mat.double())
                    row += [f'{times[1] / times[2]:.2f}x',
                            f'{rel_err(fns[2][1](mat), want):.1e}']
                print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)


def rel_err(got, want):
    """max |got - want| / max |want|."""
    return ((got.double() - want.double()).abs().max() /
            want.double().abs().max().clamp_min(1e-30)).item()


def bench_shape(shape, size, stage, variants, device, dtype, autocast_dtype,
                args):
    b, h, n, m, d = shape
    gen = torch.Generator().manual_seed(0)
    q = (torch.randn(b, h, n, d, generator=gen) * 0.3).to(device, dtype)
    lm = (torch.randn(b, h, m, d, generator=gen) * 0.3).to(device, dtype)
    v = torch.randn(b, h, n, d, generator=gen).to(device, dtype)
    # Forward error of the fast variants against the float64 reference.
    errors = {}
    with torch.no_grad():
        want = soft_attention_reference_f64(q, lm, v, args.norm)
        for name, attn in variants:
            if name in ('fused', 'triton'):
                try:
                    with torch.autocast(device.type, dtype=autocast_dtype,
                                        enabled=autocast_dtype is not None):
                        errors[name] = rel_err(attn(q, lm, v), want)
                except Exception:  # reported with the timings below
                    errors[name] = float('nan')
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
        names = [name for name, _ in variants]
        if 'ref+compile' in names:
            row.append(f'{times[names.index("ref+compile")] / times[0]:.2f}x')
        if 'triton' in names:
            i = names.index('triton')
            row += [f'{times[1] / times[i]:.2f}x',
                    f'{mems[1] / mems[i]:.2f}x' if mems[i] > 0 else 'n/a',
                    f'{times[0] / times[i]:.2f}x']
        row.append(f'{errors["fused"]:.1e}')
        if 'triton' in names:
            row.append(f'{errors["triton"]:.1e}')
        print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)


def soft_attention_reference_f64(q, lm, v, norm):
    """The reference in float64 (on the inputs' device)."""
    from soft_mm.ops.reference import soft_attention_reference
    return soft_attention_reference(q.double(), lm.double(), v.double(),
                                    norm=norm)


if __name__ == '__main__':
    main()
