# Copyright (c) soft_mm contributors. All rights reserved.
"""Throughput and peak memory: SOFT-tiny against softmax models, side by side.

Examples::

    # Classifiers, inference and training, 224 -> 1024, fp32 and AMP,
    # eager and torch.compile (a GPU run):
    python tools/analysis_tools/benchmark.py --sizes 224 384 512 768 1024 \
        --batch-sizes 32 --precisions fp32 amp --compile off on

    # Backbones at detection / segmentation sizes, forward+backward:
    python tools/analysis_tools/benchmark.py --mode backbone \
        --sizes 512x512 800x1333 1024x2048 --passes train

Models (``--models``): ``soft-tiny`` (official landmarks), ``soft-tiny-grid7``
(``landmark_grid=7``: bounded landmarks), ``deit-tiny``, ``deit-small``,
``pcpvt-s`` (Twins-PCPVT-S), ``swin-t`` from mmpretrain, and ``pvt-v2-b1``
when timm is installed. Every configuration runs in a fresh child process
(peak RSS on CPU is then its own; on CUDA ``max_memory_allocated``) with a
time limit; a failure (OOM, timeout) is a row, not the end of the run.
Writes ``benchmark_<mode>.csv`` and ``benchmark_<mode>.png`` (time and
memory vs pixels, log scale) to ``--out-dir`` and prints ratios to
SOFT-tiny.
"""
import argparse
import csv
import itertools
import math
import os
import os.path as osp
import sys

import torch

from soft_mm.apis.benchmark import machine_name, run_isolated
from soft_mm.apis.benchmark_models import (ALL_MODELS, BACKBONE_MODELS,
                                           BASELINE, CLS_MODELS, bench_config)

FIELDS = ('mode', 'model', 'params_M', 'height', 'width', 'batch', 'pass',
          'precision', 'compile', 'device', 'time_ms', 'img_per_s',
          'peak_mem_MiB', 'status', 'note')


def parse_size(text: str):
    """``'224'`` -> (224, 224); ``'800x1333'`` -> (800, 1333)."""
    parts = text.lower().split('x')
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f'size {text!r}: use N or HxW (e.g. 224, 800x1333)')
    return int(parts[0]), int(parts[1])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark SOFT-tiny against softmax models')
    parser.add_argument('--mode', choices=['cls', 'backbone'], default='cls')
    parser.add_argument('--models', nargs='+', choices=ALL_MODELS)
    parser.add_argument('--sizes', nargs='+', type=parse_size)
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    parser.add_argument('--passes', nargs='+', choices=['infer', 'train'],
                        default=['infer', 'train'])
    parser.add_argument('--precisions', nargs='+', choices=['fp32', 'amp'],
                        default=['fp32'],
                        help='amp: fp16 autocast on CUDA, bf16 on CPU')
    parser.add_argument('--compile', nargs='+', choices=['off', 'on'],
                        default=['off'], help='torch.compile the model')
    parser.add_argument('--device', default='auto',
                        help='auto (cuda if available), cpu, cuda, cuda:1')
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--timeout', type=float, default=600,
                        help='seconds per configuration before it is '
                        'recorded as a timeout')
    parser.add_argument('--skip', nargs='+', default=[],
                        help='MODEL@HxW[@pass] configurations not to run '
                        '(recorded as skipped), e.g. soft-tiny@1024x2048')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = list(CLS_MODELS if args.mode == 'cls' else
                           BACKBONE_MODELS)
    if args.sizes is None:
        args.sizes = ([(s, s) for s in (224, 384, 512, 768, 1024)]
                      if args.mode == 'cls' else
                      [(512, 512), (800, 1333), (1024, 2048)])
    return args


# ---------------------------------------------------------------- running


def run(args):
    """Run every configuration; returns the rows written to the CSV."""
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    machine = machine_name(device)
    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = osp.join(args.out_dir, f'benchmark_{args.mode}.csv')
    rows = []
    skip = set(args.skip)
    print(f'device: {device} ({machine})')
    settings = itertools.product(args.sizes, args.batch_sizes, args.passes,
                                 args.precisions, args.compile, args.models)
    with open(csv_path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for (h, w), batch, pass_, precision, compile_, name in settings:
            row = dict(
                mode=args.mode, model=name, height=h, width=w, batch=batch,
                **{'pass': pass_}, precision=precision, compile=compile_,
                device=device)
            if {f'{name}@{h}x{w}', f'{name}@{h}x{w}@{pass_}'} & skip:
                row.update(status='skipped', note='--skip')
            else:
                status, value = run_isolated(
                    bench_config, timeout=args.timeout, name=name,
                    mode=args.mode, size=(h, w), batch=batch, pass_=pass_,
                    precision=precision, compile_=compile_, device=device,
                    iters=args.iters, warmup=args.warmup,
                    threads=args.threads)
                row.update(format_result(status, value, batch))
            rows.append(row)
            writer.writerow(row)
            f.flush()
            print(format_row(row), flush=True)
    print_ratios(rows)
    md_path = osp.join(args.out_dir, f'benchmark_{args.mode}.md')
    with open(md_path, 'w') as f:
        f.write(markdown_table(rows))
    png = plot(rows, osp.join(args.out_dir, f'benchmark_{args.mode}.png'),
               f'{args.mode} ({device}: {machine})')
    print(f'wrote {csv_path}, {md_path}' + (f' and {png}' if png else ''))
    return rows


def format_result(status, value, batch):
    if status != 'ok':
        text = str(value)
        if text.startswith('RuntimeError: skipped: '):
            return dict(status='skipped', note=text.split('skipped: ', 1)[1]
                        .split(' | ')[0])
        return dict(status=status, note=text[:200])
    mem = value['peak_bytes'] / 2**20
    return dict(
        params_M=round(value['params'] / 1e6, 3),
        time_ms=round(value['time_s'] * 1e3, 2),
        img_per_s=round(batch / value['time_s'], 2),
        peak_mem_MiB=round(mem, 1) if not math.isnan(mem) else '',
        status='ok',
        note=value['note'])


def format_row(row):
    cfg = (f"{row['model']:<16} {row['height']}x{row['width']} "
           f"b{row['batch']} {row['pass']:<5} {row['precision']} "
           f"compile={row['compile']}")
    if row['status'] != 'ok':
        return f'{cfg}: {row["status"]} ({row.get("note", "")})'
    return (f"{cfg}: {row['time_ms']:9.1f} ms  {row['img_per_s']:8.2f} img/s"
            f"  peak {row['peak_mem_MiB']} MiB  {row['note']}")


def print_ratios(rows):
    """Each model's time and memory relative to SOFT-tiny, per setting."""
    groups = {}
    for r in rows:
        key = (r['height'], r['width'], r['batch'], r['pass'],
               r['precision'], r['compile'])
        groups.setdefault(key, {})[r['model']] = r
    print(f'\nratios to {BASELINE} (time x, memory x; >1 means '
          f'{BASELINE} is faster / smaller):')
    for key, by_model in groups.items():
        base = by_model.get(BASELINE)
        if not base or base['status'] != 'ok':
            continue
        parts = []
        for name, r in by_model.items():
            if name == BASELINE or r['status'] != 'ok':
                continue
            t = r['time_ms'] / base['time_ms']
            m = (r['peak_mem_MiB'] / base['peak_mem_MiB']
                 if r['peak_mem_MiB'] != '' and base['peak_mem_MiB'] else
                 math.nan)
            parts.append(f'{name} {t:.2f}x / {m:.2f}x')
        if parts:
            h, w, b, p, prec, comp = key
            print(f'  {h}x{w} b{b} {p} {prec} compile={comp}: ' +
                  ', '.join(parts))


def markdown_table(rows) -> str:
    """The results as a Markdown table, with ratios to SOFT-tiny."""
    base = {(r['height'], r['width'], r['batch'], r['pass'], r['precision'],
             r['compile']): r
            for r in rows if r['model'] == BASELINE and r['status'] == 'ok'}
    lines = [
        '| model | input | batch | pass | precision | compile | params (M) '
        '| ms / batch | img/s | peak MiB | time vs soft-tiny '
        '| memory vs soft-tiny |', '|' + '---|' * 12
    ]
    for r in rows:
        b = base.get((r['height'], r['width'], r['batch'], r['pass'],
                      r['precision'], r['compile']))
        cells = [r['model'], f"{r['height']}x{r['width']}", r['batch'],
                 r['pass'], r['precision'], r['compile']]
        if r['status'] != 'ok':
            cells += ['', r['status'] + (f" ({r['note']})"
                                         if r.get('note') else ''), '', '',
                      '', '']
        else:
            t = f"{r['time_ms'] / b['time_ms']:.2f}x" if b else ''
            m = (f"{r['peak_mem_MiB'] / b['peak_mem_MiB']:.2f}x"
                 if b and r['peak_mem_MiB'] != '' and b['peak_mem_MiB']
                 else '')
            cells += [r['params_M'], r['time_ms'], r['img_per_s'],
                      r['peak_mem_MiB'], t, m]
        lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot(rows, path, title):
    """Time and memory vs pixels per model (log-log); one row per pass."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: no plot')
        return None
    ok = [r for r in rows if r['status'] == 'ok']
    if not ok:
        return None
    first = ok[0]
    ok = [r for r in ok if r['precision'] == first['precision']
          and r['compile'] == first['compile'] and r['batch'] == first['batch']]
    passes = sorted({r['pass'] for r in ok})
    fig, axes = plt.subplots(len(passes), 2, figsize=(11, 4 * len(passes)),
                             squeeze=False)
    for i, pass_ in enumerate(passes):
        for j, (field, label) in enumerate(
            [('time_ms', 'time per batch (ms)'),
             ('peak_mem_MiB', 'peak memory (MiB)')]):
            ax = axes[i][j]
            for name in dict.fromkeys(r['model'] for r in ok):
                pts = sorted((r['height'] * r['width'] / 1e6, r[field])
                             for r in ok if r['model'] == name
                             and r['pass'] == pass_ and r[field] != '')
                if pts:
                    ax.plot(*zip(*pts), marker='o', label=name)
            ax.set_xscale('log')
            ax.set_yscale('log')
            ax.set_xlabel('input pixels (millions)')
            ax.set_ylabel(label)
            ax.set_title(f'{pass_}, batch {first["batch"]}, '
                         f'{first["precision"]}, compile={first["compile"]}')
            ax.grid(True, which='both', alpha=.3)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = run(args)
    return 0 if any(r['status'] == 'ok' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
