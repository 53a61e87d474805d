# Copyright (c) soft_mm contributors. All rights reserved.
"""Time and peak memory of SOFT-tiny against softmax models, under the
protocol of :mod:`soft_mm.benchmark` (interleaved rounds, a fresh process
per measurement, min / median / max, load checks).

Examples::

    # The default tables (CPU, fp32, 2 threads; PVT-v2-b1 needs timm),
    # against SOFT-tiny of an older checkout:
    git worktree add /tmp/before 71ba479
    (cd /tmp/before && python setup.py build_ext --inplace)
    python tools/analysis_tools/benchmark.py --before-root /tmp/before

    # ... and with torch.compile of the whole classifier as well:
    python tools/analysis_tools/benchmark.py --before-root /tmp/before \\
        --compile off on

    # Free-form: classifiers at several sizes, GPU, fp32 and AMP:
    python tools/analysis_tools/benchmark.py --sizes 224 384 512 1024 \\
        --batch-sizes 32 --precisions fp32 amp --device cuda --rounds 3

    # Detectors and segmentors (full mmcv, mmdet, mmseg): RetinaNet and
    # Mask R-CNN at 800x1333, UPerNet at 512x512, 512x1024 and 1024x2048,
    # with SOFT-Norm-tiny, PVTv2-b1, Swin-T and ResNet-50 backbones (a
    # point predicted from two smaller sizes to exceed the machine is
    # skipped with its prediction, as in the sweep):
    python tools/analysis_tools/benchmark.py --mode dense --rounds 2

    # Backbones at detection / segmentation sizes, forward+backward:
    python tools/analysis_tools/benchmark.py --mode backbone \\
        --sizes 512x512 800x1333 --passes train

    # The allocator: SOFT-tiny grid-7 training at 1024^2 and 2048^2 as a
    # user gets it, with glibc keeping freed memory, with huge pages, with
    # jemalloc and tcmalloc preloaded:
    python tools/analysis_tools/benchmark.py --models soft-tiny-grid7 \\
        --sizes 1024 2048 --passes train \\
        --allocators default glibc-keep thp jemalloc tcmalloc

    # The resolution sweep: 224^2 .. 2048^2 and 1024x2048, train and
    # inference, SOFT-tiny (official, grid-7), PVT-v2-b1, DeiT-tiny, Swin-T;
    # points predicted to exceed the machine are skipped with the
    # prediction; fitted exponents and log-log PNG plots:
    python tools/analysis_tools/benchmark.py --sweep --rounds 2

Models (``--models``): ``soft-tiny`` (official landmarks),
``soft-tiny-grid7`` (``landmark_grid=7``: bounded landmarks),
``soft-tiny-grid7-cp`` (the same with ``with_cp=True``), their
``*-before`` twins (built from ``--before-root``), ``deit-tiny``,
``deit-small``, ``pcpvt-s`` (Twins-PCPVT-S), ``swin-t`` from mmpretrain,
``pvt-v2-b1`` from timm (skipped without it), and ``toy`` / ``toy-wide``
(two convolutions, for testing the tool). Without ``--sizes`` (``--mode
cls``) the default tables run (``DEFAULT_TABLES`` in
``soft_mm/benchmark/subjects.py``), ``--models`` then selecting among their
models. Writes ``benchmark_<mode>.md`` (header and tables),
``benchmark_<mode>.csv`` (every measurement of every round) and
``benchmark_<mode>.json`` (header, loads, warnings, summary) to
``--out-dir``; ``--sweep`` writes ``benchmark_sweep.*`` and the plots
``benchmark_sweep_time.png``, ``benchmark_sweep_memory.png``.
"""
import argparse
import os.path as osp
import shlex
import sys

import torch

from soft_mm.benchmark import CURRENT_ROOT, run_benchmark
from soft_mm.benchmark.allocators import ALLOCATORS
from soft_mm.benchmark.machine import (cpu_busy_seconds, meminfo_MiB,
                                       read_loadavg)
from soft_mm.benchmark.report import (markdown_header, model_markdown,
                                      write_report)
from soft_mm.benchmark.subjects import (ALL_MODELS, BASELINE, BEFORE_MODELS,
                                        DENSE_BASELINE, DENSE_MODELS,
                                        DENSE_TABLES, DENSE_TASKS,
                                        dense_tables, model_cases,
                                        model_tables, table_title)
from soft_mm.benchmark.sweep import (PREDICTION_FIELDS, SWEEP_MODELS,
                                     SWEEP_SIZES, SweepGate, exponent_markdown,
                                     fit_exponents, pivot_markdown, plot_sweep,
                                     sort_sizes)


def parse_size(text: str):
    """``'224'`` -> (224, 224); ``'800x1333'`` -> (800, 1333)."""
    parts = text.lower().split('x')
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f'size {text!r}: use N or HxW (e.g. 224, 800x1333)')
    return int(parts[0]), int(parts[1])


def positive_int(text: str):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text}: must be >= 1')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark SOFT-tiny against softmax models: '
        'interleaved rounds, a fresh process per measurement, load checks')
    parser.add_argument(
        '--mode', choices=['cls', 'backbone', 'dense'], default='cls',
        help='cls: classifiers; backbone: feature pyramids; dense: mmdet '
        'detectors / mmseg segmentors with swapped backbones (full mmcv)')
    parser.add_argument(
        '--tasks', nargs='+', choices=list(DENSE_TASKS),
        help=f'--mode dense: the detectors / segmentors (default: '
        f'{", ".join(f"{t} {h}x{w}" for t, (h, w) in DENSE_TABLES)})')
    parser.add_argument(
        '--models', nargs='+', choices=ALL_MODELS,
        help='models to run (without --sizes: a selection of the default '
        "tables' models)")
    parser.add_argument('--sizes', nargs='+', type=parse_size,
                        help='N or HxW; without it (cls mode) the default '
                        'tables run')
    parser.add_argument('--batch-sizes', nargs='+', type=positive_int,
                        help='with --sizes (default 1)')
    parser.add_argument('--passes', nargs='+', choices=['infer', 'train'],
                        help='with --sizes (default infer train)')
    parser.add_argument('--precisions', nargs='+', choices=['fp32', 'amp'],
                        default=['fp32'],
                        help='amp: fp16 autocast on CUDA, bf16 on CPU')
    parser.add_argument('--compile', nargs='+', choices=['off', 'on'],
                        default=['off'],
                        help='torch.compile the whole model (on: a column '
                        'of its own, compiled in every process)')
    parser.add_argument('--device', default='cpu',
                        help='cpu (default), cuda, cuda:1, or auto')
    parser.add_argument('--rounds', type=positive_int, default=5,
                        help='interleaved rounds: measurements per model')
    parser.add_argument('--iters', type=positive_int, default=3,
                        help='timed steps per measurement')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps first (compilation, allocator)')
    parser.add_argument('--threads', type=positive_int, default=2,
                        help='torch CPU threads of every measurement')
    parser.add_argument('--before-root', metavar='PATH',
                        help='an older checkout of soft_mm (e.g. a git '
                        'worktree) for the *-before models')
    parser.add_argument('--baseline', choices=ALL_MODELS,
                        help=f'ratios are relative to it (default '
                        f'{BASELINE}; a table without it: its first model)')
    parser.add_argument('--busy-load', type=float, default=None,
                        help='load from other processes above which the '
                        'machine counts as busy (default: half of the CPUs '
                        'the measurement leaves free, at least 0.5)')
    parser.add_argument('--timeout', type=float, default=900,
                        help='seconds per measurement (process) before it '
                        'is recorded as a timeout')
    parser.add_argument('--skip', nargs='+', default=[],
                        help='MODEL@HxW[@pass] configurations not to run '
                        '(recorded as skipped), e.g. deit-tiny@1024x1024; '
                        'with --allocators, MODEL names the model under '
                        'every setting')
    parser.add_argument(
        '--allocators', nargs='+', choices=list(ALLOCATORS),
        default=['default'],
        help='measure every model under each CPU allocator setting (named '
        'MODEL+SETTING; "default" is the allocator as a user gets it, '
        '"glibc-keep" keeps freed memory for reuse, "thp" asks for '
        'transparent huge pages, "jemalloc" / "tcmalloc" preload that '
        'allocator (skipped where it is not installed); see '
        'soft_mm/benchmark/allocators.py)')
    parser.add_argument(
        '--sweep', action='store_true',
        help='the resolution sweep: --sizes default to 224..2048 and '
        '1024x2048, --models to SOFT-tiny (official, grid-7), PVT-v2-b1, '
        'DeiT-tiny, Swin-T; sizes run small to large, a point predicted '
        'from the smaller ones to exceed --max-step-s or --max-mem-gib is '
        'skipped with its prediction; prints fitted exponents, writes PNG '
        'plots')
    parser.add_argument('--max-step-s', type=float, default=90,
                        help='--sweep and --mode dense: skip points '
                        'predicted (from the same model at two smaller '
                        'sizes) slower than this per step')
    parser.add_argument('--max-mem-gib', type=float, default=None,
                        help='--sweep and --mode dense: skip points '
                        'predicted to need more memory (default: 70%% of '
                        'the memory available at the start)')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser, args):
    """Errors for arguments that cannot work, before anything runs."""
    if not args.max_step_s > 0:
        parser.error(f'--max-step-s must be > 0, got {args.max_step_s}')
    if args.max_mem_gib is not None and not args.max_mem_gib > 0:
        parser.error(f'--max-mem-gib must be > 0, got {args.max_mem_gib}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if 'on' in args.compile and args.warmup < 1:
        parser.error('--compile on needs --warmup >= 1: the first steps '
                     'compile')
    if args.timeout <= 0:
        parser.error(f'--timeout must be > 0, got {args.timeout}')
    if args.busy_load is not None and not args.busy_load >= 0:
        parser.error(f'--busy-load must be >= 0, got {args.busy_load}')
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f'--device {args.device!r}: not a device')
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available')
    if args.before_root is not None:
        root = osp.realpath(osp.expanduser(args.before_root))
        if not osp.isfile(osp.join(root, 'soft_mm', '__init__.py')):
            parser.error(f'--before-root {args.before_root}: no '
                         'soft_mm/__init__.py there (give the root of a '
                         'soft_mm checkout, e.g. a git worktree)')
        args.before_root = root
    elif args.models and set(args.models) & set(BEFORE_MODELS):
        parser.error(f'{", ".join(set(args.models) & set(BEFORE_MODELS))} '
                     'need --before-root PATH (an older soft_mm checkout)')
    if len(set(args.allocators)) != len(args.allocators):
        parser.error('--allocators: a setting given twice: '
                     f'{" ".join(args.allocators)}')
    if args.sweep:
        if args.allocators != ['default']:
            parser.error('--sweep measures the default allocator; compare '
                         'allocators with --sizes')
        if args.mode != 'cls':
            parser.error('--sweep measures classifiers (--mode cls)')
        args.sizes = sort_sizes(args.sizes or SWEEP_SIZES)
        args.models = args.models or list(SWEEP_MODELS)
        if args.baseline is None and 'soft-tiny-grid7' in args.models:
            args.baseline = 'soft-tiny-grid7'
    if args.mode == 'dense':
        check_dense_args(parser, args)
        return
    if args.tasks:
        parser.error('--tasks applies to --mode dense')
    dense = sorted(set(args.models or ()) & set(DENSE_MODELS) -
                   {'swin-t'})
    if dense:
        parser.error(f'{", ".join(dense)}: dense backbones (--mode dense)')
    default = args.sizes is None and args.mode == 'cls'
    if default and (args.batch_sizes or args.passes):
        parser.error('--batch-sizes and --passes apply with --sizes only '
                     '(without --sizes the default tables run)')
    sizes = None if default else args.sizes or [(512, 512), (800, 1333)]
    args.tables = model_tables(
        args.models, sizes, args.batch_sizes or [1],
        args.passes or ['infer', 'train'], args.precisions, args.compile,
        args.mode, bool(args.before_root))
    if not args.tables:
        parser.error(f'none of --models {" ".join(args.models)} is in the '
                     'default tables; give --sizes as well')
    if args.baseline is None:
        args.baseline = BASELINE
    elif not any(args.baseline in t['models'] for t in args.tables):
        parser.error(f'--baseline {args.baseline} is not among the models')


def check_dense_args(parser, args):
    """``--mode dense``: its backbones, fp32, eager, the tasks' batch
    sizes."""
    wrong = [m for m in args.models or () if m not in DENSE_MODELS]
    if wrong:
        parser.error(f'--mode dense compares {", ".join(DENSE_MODELS)}; '
                     f'not {", ".join(wrong)}')
    if (args.batch_sizes or args.precisions != ['fp32']
            or args.compile != ['off'] or args.before_root):
        parser.error('--mode dense measures fp32, eager, batch 1 (UPerNet '
                     '2) (no --batch-sizes, --precisions, --compile, '
                     '--before-root)')
    args.tables = dense_tables(args.models, args.tasks, args.sizes,
                               args.passes or ['train', 'infer'])
    if args.baseline is None:
        args.baseline = DENSE_BASELINE


def main(argv=None, loadavg=read_loadavg, cpu_seconds=cpu_busy_seconds) -> int:
    args = parse_args(argv)
    roots = dict(current=CURRENT_ROOT)
    if args.before_root:
        roots['before'] = args.before_root
    command = (shlex.join([osp.relpath(sys.argv[0])] + sys.argv[1:])
               if sys.argv and sys.argv[0].endswith('benchmark.py') else '')
    baselines = {t['table']: args.baseline if args.baseline in t['models']
                 else t['models'][0] for t in args.tables}
    if 'default' not in args.allocators:  # named MODEL+SETTING only
        baselines = {k: f'{v}+{args.allocators[0]}'
                     for k, v in baselines.items()}
    kind = 'sweep' if args.sweep else args.mode
    stem = osp.join(args.out_dir, f'benchmark_{kind}')
    cases = model_cases(args.tables, args.mode, args.before_root, args.skip,
                        args.allocators)
    gated = args.sweep or args.mode == 'dense'
    gate = sweep_gate(args) if gated else None
    rows, summary, header = run_benchmark(
        cases, rounds=args.rounds, iters=args.iters,
        warmup=args.warmup, threads=args.threads, device=args.device,
        out_stem=stem, baselines=baselines, roots=roots, command=command,
        busy_load=args.busy_load, timeout=args.timeout, loadavg=loadavg,
        cpu_seconds=cpu_seconds, gate=gate,
        extra_fields=PREDICTION_FIELDS if gated else ())
    titles = {t['table']: table_title(t) for t in args.tables}
    lines = (markdown_header(f'Benchmark ({kind})', header) +
             model_markdown(summary, titles))
    if args.sweep:
        lines += sweep_results(args, rows, header, stem)
    write_report(stem, '\n'.join(lines), header, summary)
    return 0 if any(r['status'] == 'ok' for r in rows) else 1


def sweep_gate(args) -> SweepGate:
    """The sweep's (and the dense mode's) skip rule, with the memory
    budget of this machine."""
    budget = (args.max_mem_gib * 1024 if args.max_mem_gib is not None else
              0.7 * meminfo_MiB('MemAvailable'))
    if budget != budget:  # no /proc/meminfo: no memory rule
        budget = float('inf')
    print(f'{"sweep" if args.sweep else args.mode}: points predicted '
          f'above {args.max_step_s:g} s/step or '
          f'{budget / 1024:.1f} GiB are skipped')
    return SweepGate(args.max_step_s, budget)


def sweep_results(args, rows, header, stem):
    """The sweep's exponents (markdown lines) and plots."""
    passes = args.passes or ['infer', 'train']
    fits = fit_exponents(rows, args.models, passes)
    roots = ', '.join(header['roots'].values())
    title = (f"{header['cpu']}, {header['threads']} threads, "
             f"{header['device']}, batch 1, fp32 — soft_mm {roots} — "
             f"{header['date']}")
    plots = plot_sweep(rows, args.models, passes, title, stem)
    return pivot_markdown(rows, args.models, passes) + exponent_markdown(
        fits) + [
        f'![{osp.basename(p)}]({osp.basename(p)})' for p in plots] + ['']


if __name__ == '__main__':
    sys.exit(main())
