# Copyright (c) soft_mm contributors. All rights reserved.
"""Benchmark the SOFT attention op under the protocol of
:mod:`soft_mm.benchmark` (interleaved rounds, a fresh process per
measurement, load checks): the compiled extension (``fused``), the
pure-PyTorch reference, the reference under ``torch.compile`` and, with
``--triton``, the Triton kernels, side by side.

For each SOFT-tiny attention stage (1-3) at each input size and batch it
times forward and forward+backward (the median of ``--repeat`` steps after
``--warmup``, per round), measures the peak memory and the forward's error
against the float64 reference, and prints a markdown table with the
reference/fused (and reference/triton) ratios of the medians over the
rounds. A second table times the Newton iteration alone (the extension's,
Triton's, and the reference's op-by-op loop) on each stage's ``B * h``
landmark matrices.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the inputs;
on CPU the peak resident set above the resident set before the steps, with
glibc told to return every allocation >= 64 KiB to the OS
(``MALLOC_MMAP_THRESHOLD_``), so that RSS follows the live tensors.

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
import os.path as osp
import sys

import torch

from soft_mm.benchmark import run_benchmark
from soft_mm.benchmark.report import (markdown_header, variant_markdown,
                                      write_report)
from soft_mm.benchmark.subjects import attention_cases, newton_cases
from soft_mm.ops import get_backend


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--sizes', type=int, nargs='+', default=[224])
    parser.add_argument('--batches', type=int, nargs='+', default=[1])
    parser.add_argument('--stages', type=int, nargs='+', default=[1, 2, 3],
                        choices=[1, 2, 3])
    parser.add_argument('--dtype', default='float32',
                        choices=['float32', 'float16', 'bfloat16'],
                        help='input dtype (half types run under autocast)')
    parser.add_argument('--rounds', type=int, default=3,
                        help='interleaved rounds: measurements per variant')
    parser.add_argument('--repeat', type=int, default=10,
                        help='timed steps per measurement')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--norm', action='store_true', help='SOFT-Norm')
    parser.add_argument('--no-compile', action='store_true',
                        help='skip the torch.compile reference')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--no-newton', action='store_true',
                        help='skip the Newton-iteration-only table')
    parser.add_argument('--triton', action='store_true',
                        help="add the Triton kernels (impl='triton')")
    parser.add_argument('--busy-load', type=float, default=None,
                        help='load from other processes above which the '
                        'machine counts as busy')
    parser.add_argument('--timeout', type=float, default=600,
                        help='seconds per measurement')
    parser.add_argument('--out-dir', default='work_dirs/benchmark_ops')
    args = parser.parse_args(argv)
    for name in ('rounds', 'repeat'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1')
    args.threads = args.threads or torch.get_num_threads()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    ext = get_backend('ext')
    if ext.unavailable_reason(device.type):
        print(f'error: {ext.unavailable_reason(device.type)}',
              file=sys.stderr)
        return 1
    attention = [('fused', 'ext', False), ('reference', 'reference', False)]
    newton = [('kernel', 'ext'), ('reference', 'reference')]
    if not args.no_compile:
        attention.append(('ref+compile', 'reference', True))
    if args.triton:
        get_backend('triton').require(device.type)
        attention.append(('triton', 'triton', False))
        newton.append(('triton', 'triton'))
    cases, att_leads = attention_cases(args.sizes, args.stages, args.batches,
                                       attention, args.norm, args.dtype)
    newton_leads = {}
    if not args.no_newton:
        more, newton_leads = newton_cases(args.sizes, args.stages,
                                          args.batches, newton,
                                          len(att_leads) + 1)
        cases += more
    env = {}
    if device.type == 'cpu' and os.access('/proc/self/clear_refs', os.W_OK):
        # Large frees go back to the OS, so RSS tracks live tensors (glibc
        # otherwise raises the threshold and keeps them).
        env['MALLOC_MMAP_THRESHOLD_'] = '65536'
    stem = osp.join(args.out_dir, 'benchmark_ops')
    baselines = {c.table: 'fused' if c.table in att_leads else 'kernel'
                 for c in cases}
    rows, summary, header = run_benchmark(
        cases, rounds=args.rounds, iters=args.repeat, warmup=args.warmup,
        threads=args.threads, device=args.device, out_stem=stem,
        baselines=baselines, roots={'current': cases[0].root},
        command=' '.join(['benchmark_ops.py'] + (argv or sys.argv[1:])),
        busy_load=args.busy_load, timeout=args.timeout, env=env,
        name_field='variant', extra_fields=('err', ))
    names = [name for name, *_ in attention]
    ratios = [('ref/fused time', 'reference', 'fused', 'time'),
              ('ref/fused mem', 'reference', 'fused', 'mem')]
    if not args.no_compile:
        ratios.append(('compiled/fused time', 'ref+compile', 'fused', 'time'))
    if args.triton:
        ratios += [('ref/triton time', 'reference', 'triton', 'time'),
                   ('ref/triton mem', 'reference', 'triton', 'mem'),
                   ('fused/triton time', 'fused', 'triton', 'time')]
    title = (f'SOFT attention op ({args.dtype}, norm={args.norm}): median '
             'over the rounds')
    lines = markdown_header(title, header) + variant_markdown(
        summary, att_leads, ['size', 'stage', 'B', 'h', 'n', 'm', 'pass'],
        names, ratios, ['fused'] + (['triton'] if args.triton else []))
    if newton_leads:
        ratios = [('ref/kernel time', 'reference', 'kernel', 'time')]
        if args.triton:
            ratios.append(('ref/triton time', 'reference', 'triton', 'time'))
        lines += ['', 'Newton iteration alone (20 steps, float32, the '
                  "stage's B*h landmark kernels), median ms:", '']
        lines += variant_markdown(summary, newton_leads,
                                  ['size', 'stage', 'B*h', 'm'],
                                  [name for name, _ in newton], ratios,
                                  ['triton'] if args.triton else [])
    text = '\n'.join(lines) + '\n'
    write_report(stem, text, header, summary)
    return 0 if any(r['status'] == 'ok' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
