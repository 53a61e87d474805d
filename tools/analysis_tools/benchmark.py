# Copyright (c) soft_mm contributors. All rights reserved.
"""Time and peak memory of SOFT-tiny against softmax models, with a
protocol whose CPU figures can be trusted.

Protocol: every model of every table is measured in the same run, in
interleaved rounds (round 1: A B C, round 2: A B C, ...), each measurement
in a fresh ``python`` process (its own imports, allocator and peak-RSS
mark) that runs ``--warmup`` untimed and ``--iters`` timed steps; a round's
time is the median of its timed steps, and the table reports min / median
/ max over the rounds, the median peak memory, and ratios to a baseline.
The load average is read before and after the run and at every round, the
CPU time other processes took during each measurement from ``/proc/stat``;
when the machine was busy the output says so, loudly.

Examples::

    # The table of GitHub issue 13 (CPU, fp32, 2 threads; PVT-v2-b1 needs
    # timm), against SOFT-tiny of an older checkout:
    git worktree add /tmp/before 71ba479
    (cd /tmp/before && python setup.py build_ext --inplace)
    python tools/analysis_tools/benchmark.py --before-root /tmp/before

    # ... and with torch.compile of the whole classifier as well:
    python tools/analysis_tools/benchmark.py --before-root /tmp/before \
        --compile off on

    # Free-form: classifiers at several sizes, GPU, fp32 and AMP:
    python tools/analysis_tools/benchmark.py --sizes 224 384 512 1024 \
        --batch-sizes 32 --precisions fp32 amp --device cuda --rounds 3

    # Backbones at detection / segmentation sizes, forward+backward:
    python tools/analysis_tools/benchmark.py --mode backbone \
        --sizes 512x512 800x1333 --passes train

Models (``--models``): ``soft-tiny`` (official landmarks),
``soft-tiny-grid7`` (``landmark_grid=7``: bounded landmarks), their
``*-before`` twins (built from ``--before-root``), ``deit-tiny``,
``deit-small``, ``pcpvt-s`` (Twins-PCPVT-S), ``swin-t`` from mmpretrain,
``pvt-v2-b1`` from timm (skipped without it), and ``toy`` / ``toy-wide``
(two convolutions, for testing the tool). Without ``--sizes`` (``--mode
cls``) the run is the preset of issue 13 (``PRESET`` in
``soft_mm/apis/benchmark_models.py``), ``--models`` then selecting among
its models. Writes ``benchmark_<mode>.md`` (header and tables),
``benchmark_<mode>.csv`` (every measurement of every round) and
``benchmark_<mode>.json`` (header, loads, warnings, summary) to
``--out-dir``.
"""
import argparse
import csv
import datetime
import json
import math
import os
import os.path as osp
import resource
import shlex
import statistics
import subprocess
import sys
import time

import torch

import soft_mm
from soft_mm.apis.benchmark import (busy_threshold, cpu_busy_seconds,
                                    machine_info, read_loadavg)
from soft_mm.apis.benchmark_models import (ALL_MODELS, BACKBONE_MODELS,
                                           BASELINE, BEFORE_MODELS,
                                           CLS_MODELS, PRESET, child_command,
                                           child_env, parse_child_output,
                                           static_skip)

#: The ``soft_mm`` checkout this tool belongs to (the directory holding the
#: package), imported by the measurements of the non-``before`` models.
#: realpath: tools/setup.sh links <site-packages>/soft_mm to the checkout,
#: and the header should name the checkout (and its commit).
CURRENT_ROOT = osp.dirname(osp.dirname(osp.realpath(soft_mm.__file__)))

FIELDS = ('table', 'round', 'seq', 'model', 'pass', 'height', 'width',
          'batch', 'precision', 'compile', 'device', 'threads', 'status',
          'time_ms', 'iter_ms', 'img_per_s', 'peak_mem_MiB', 'params_M',
          'load1_start', 'others_cpu', 'wall_s', 'busy', 'note')


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
    parser.add_argument('--mode', choices=['cls', 'backbone'], default='cls')
    parser.add_argument(
        '--models', nargs='+', choices=ALL_MODELS,
        help='models to run (with the preset: a selection of its models)')
    parser.add_argument('--sizes', nargs='+', type=parse_size,
                        help='N or HxW; without it (cls mode) the preset '
                        'of issue 13 runs')
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
                        '(recorded as skipped), e.g. deit-tiny@1024x1024')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser, args):
    """Errors for arguments that cannot work, before anything runs."""
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
    preset = args.sizes is None and args.mode == 'cls'
    if preset and (args.batch_sizes or args.passes):
        parser.error('--batch-sizes and --passes apply with --sizes only '
                     '(without --sizes the preset of issue 13 runs)')
    args.cases = build_cases(args, preset)
    if not args.cases:
        parser.error(f'none of --models {" ".join(args.models)} is in the '
                     'preset tables; give --sizes as well')
    if args.baseline is None:
        args.baseline = BASELINE
    elif not any(args.baseline in c['models'] for c in args.cases):
        parser.error(f'--baseline {args.baseline} is not among the models')


def build_cases(args, preset):
    """The tables: dicts of pass, size, batch, precision, compile, models."""
    if preset:
        base = [(p, s, b, tuple(m for m in models
                               if args.models is None or m in args.models))
                for p, s, b, models in PRESET]
    else:
        sizes = args.sizes or [(512, 512), (800, 1333)]
        models = args.models or (
            (CLS_MODELS if args.mode == 'cls' else BACKBONE_MODELS) +
            (BEFORE_MODELS[:1] if args.before_root else ()))
        base = [(p, s, b, tuple(models)) for s in sizes
                for b in (args.batch_sizes or [1])
                for p in (args.passes or ['infer', 'train'])]
    cases = []
    for pass_, size, batch, models in base:
        if not models:
            continue
        for precision in args.precisions:
            for compile_ in args.compile:
                cases.append(
                    dict(pass_=pass_, size=size, batch=batch,
                         precision=precision, compile_=compile_,
                         models=models))
    for i, case in enumerate(cases, 1):
        case['table'] = i
    return cases


def case_title(case) -> str:
    h, w = case['size']
    return (f"{case['pass_']} {h}x{w}, batch {case['batch']}, "
            f"{case['precision']}, "
            f"{'torch.compile' if case['compile_'] == 'on' else 'eager'}")


# ------------------------------------------------------------- the machine


def git_describe(root) -> str:
    """``<short commit>[+dirty]`` of a checkout, or ``'no git'``."""
    try:
        commit = subprocess.run(
            ['git', '-C', root, 'rev-parse', '--short', 'HEAD'],
            capture_output=True, text=True, check=True,
            timeout=30).stdout.strip()
        dirty = subprocess.run(
            ['git', '-C', root, 'status', '--porcelain',
             '--untracked-files=no'], capture_output=True, text=True,
            timeout=30).stdout.strip()
        return commit + ('+dirty' if dirty else '')
    except Exception:
        return 'no git'


class LoadMonitor:
    """Load readings and the verdict "busy" (others' load above
    ``threshold``). ``loadavg`` and ``cpu_seconds`` are injectable (tests
    fake a loaded machine with them).

    Readings taken while none of the run's processes has run count all the
    load as others'; later ones subtract ``threads`` (the most the run's
    own measurement adds, an upper bound while the 1-minute average decays).
    """

    def __init__(self, nproc, threads, threshold=None, loadavg=read_loadavg,
                 cpu_seconds=cpu_busy_seconds):
        self.threads = threads
        self.threshold = (busy_threshold(nproc, threads)
                          if threshold is None else threshold)
        self.loadavg = loadavg
        self.cpu_seconds = cpu_seconds
        self.readings = []  # (label, (l1, l5, l15), others, busy)
        self.warnings = []

    def read(self, label, own=0.0):
        load = tuple(float(v) for v in self.loadavg())
        others = max(load[0] - own, 0.0)
        busy = others > self.threshold
        self.readings.append((label, load, others, busy))
        if busy:
            self.warnings.append(
                f'{label}: 1-min load average {load[0]:.2f}'
                + (f' (others ~{others:.2f} after subtracting this run\'s '
                   f'{own:g} threads)' if own else '') +
                f' > {self.threshold:g}')
        return load[0], busy

    def others_busy(self, label, others_cpu):
        """Judge a measurement by the CPU others took during it."""
        if others_cpu is not None and others_cpu > self.threshold:
            self.warnings.append(
                f'{label}: other processes used {others_cpu:.2f} CPUs on '
                f'average during it > {self.threshold:g}')
            return True
        return False


def banner(warnings, threshold) -> str:
    bar = '!' * 78
    lines = [bar, '!!! WARNING: THE MACHINE WAS BUSY DURING THIS BENCHMARK. '
             'THE TIMES ARE', '!!! NOT TRUSTWORTHY: do not publish them; '
             'rerun on a quiet machine.',
             f'!!! (busy: load from other processes above {threshold:g}; '
             f'{len(warnings)} reading(s))']
    shown = warnings[:8]
    lines += [f'!!!   {w}' for w in shown]
    if len(warnings) > len(shown):
        lines.append(f'!!!   ... and {len(warnings) - len(shown)} more '
                     '(see the CSV column busy)')
    return '\n'.join(lines + [bar])


# ---------------------------------------------------------------- running


def measure_once(cfg, timeout, env, cwd=None, cpu_seconds=cpu_busy_seconds):
    """One measurement in a fresh python process.

    Returns:
        tuple[dict, float, float]: the child's result (``status`` and
        fields), its wall time, and the CPU-seconds of other processes
        during it (None where ``/proc/stat`` is unreadable).
    """
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_self = time.process_time()
    before_busy = cpu_seconds()
    start = time.monotonic()
    try:
        proc = subprocess.run(
            child_command(cfg), capture_output=True, text=True,
            timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        result = dict(status='timeout', note=f'took longer than '
                      f'{timeout:.0f} s')
    else:
        result = parse_child_output(proc.stdout)
        if result is None:
            if proc.returncode < 0:
                why = (f'killed by signal {-proc.returncode} '
                       '(out of memory?)')
            else:
                tail = (proc.stderr.strip().splitlines() or [''])[-1]
                why = f'exit code {proc.returncode}: {tail}'
            result = dict(status='error', note=why)
    wall = time.monotonic() - start
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after_children.ru_utime - before_children.ru_utime +
           after_children.ru_stime - before_children.ru_stime +
           time.process_time() - before_self)
    busy = cpu_seconds() - before_busy
    others = None if math.isnan(busy) else max(busy - own, 0.0)
    return result, wall, others


def run(args, loadavg=read_loadavg, cpu_seconds=cpu_busy_seconds):
    """Run every table in interleaved rounds; returns ``(rows, summary,
    header)`` (the CSV rows, the table rows, the header dict)."""
    device = args.device
    info = machine_info(device, args.threads)
    monitor = LoadMonitor(info['nproc'], args.threads, args.busy_load,
                          loadavg=loadavg, cpu_seconds=cpu_seconds)
    roots = {'current': CURRENT_ROOT}
    if args.before_root:
        roots['before'] = args.before_root
    header = dict(
        info, date=datetime.datetime.now().isoformat(timespec='seconds'),
        command=shlex.join([osp.relpath(sys.argv[0])] + sys.argv[1:])
        if sys.argv and sys.argv[0].endswith('benchmark.py') else '',
        roots={k: f'{v} ({git_describe(v)})'
               for k, v in roots.items()},
        rounds=args.rounds, iters=args.iters, warmup=args.warmup,
        busy_threshold=monitor.threshold)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir, f'benchmark_{args.mode}')
    env = child_env(args.threads)

    for line in header_lines(header):
        print(line)
    load1, busy = monitor.read('before the run')
    header['load_before'] = monitor.readings[-1][1]
    if busy:
        print(banner(monitor.warnings, monitor.threshold), flush=True)

    rows, failed, skip = [], {}, set(args.skip)
    seq = 0
    with open(stem + '.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for rnd in range(1, args.rounds + 1):
            round_load, round_busy = (
                (load1, busy) if rnd == 1 else
                monitor.read(f'round {rnd} start', own=args.threads))
            print(f'--- round {rnd}/{args.rounds}: 1-min load '
                  f'{round_load:.2f}' + (' (BUSY)' if round_busy else ''),
                  flush=True)
            for case in args.cases:
                for name in case['models']:
                    seq += 1
                    row = measure_row(args, case, name, rnd, seq, failed,
                                      skip, env, monitor, round_load,
                                      round_busy)
                    if row is None:
                        continue
                    rows.append(row)
                    writer.writerow(row)
                    f.flush()
                    print(format_row(row), flush=True)
    monitor.read('after the run', own=args.threads)
    header['load_after'] = monitor.readings[-1][1]
    header['loads'] = [dict(label=lb, load=ld, others=round(o, 2), busy=b)
                       for lb, ld, o, b in monitor.readings]
    header['warnings'] = monitor.warnings
    summary = summarise(rows, args)
    text = markdown(header, summary, args)
    with open(stem + '.md', 'w') as f:
        f.write(text)
    with open(stem + '.json', 'w') as f:
        json.dump(dict(header=header, summary=summary), f, indent=1,
                  default=str)
    print()
    print(text)
    if monitor.warnings:
        print(banner(monitor.warnings, monitor.threshold))
    print(f'wrote {stem}.md, {stem}.csv and {stem}.json')
    return rows, summary, header


def measure_row(args, case, name, rnd, seq, failed, skip, env, monitor,
                round_load, round_busy):
    """One CSV row: a measurement, or why there is none (None: a row
    already says so)."""
    h, w = case['size']
    row = dict(
        table=case['table'], round=rnd, seq=seq, model=name,
        **{'pass': case['pass_']}, height=h, width=w, batch=case['batch'],
        precision=case['precision'], compile=case['compile_'],
        device=args.device, threads=args.threads,
        load1_start=round(round_load, 2), busy='yes' if round_busy else '')
    key = (case['table'], name)
    reason = static_skip(name, args.mode)
    if name.endswith('-before') and not args.before_root:
        reason = 'no --before-root given'
    if {f'{name}@{h}x{w}', f'{name}@{h}x{w}@{case["pass_"]}'} & skip:
        reason = '--skip'
    if reason or key in failed:
        if rnd > 1:
            return None  # round 1's row says it
        row.update(status='skipped', note=reason or failed[key])
        return row
    root = (args.before_root if name.endswith('-before') else CURRENT_ROOT)
    cfg = dict(name=name, mode=args.mode, size=[h, w], batch=case['batch'],
               pass_=case['pass_'], precision=case['precision'],
               compile_=case['compile_'], device=args.device,
               iters=args.iters, warmup=args.warmup, threads=args.threads,
               soft_root=root)
    result, wall, others_s = measure_once(
        cfg, args.timeout, env, cwd=osp.abspath(args.out_dir),
        cpu_seconds=monitor.cpu_seconds)
    others = None if others_s is None else others_s / max(wall, 1e-9)
    busy = monitor.others_busy(f'round {rnd}, {name} ({case_title(case)})',
                               others)
    row.update(wall_s=round(wall, 1),
               others_cpu='' if others is None else round(others, 2))
    if busy:
        row['busy'] = 'yes'
    status = result['status']
    row['status'] = status
    if status != 'ok':
        row['note'] = str(result.get('note', ''))[:300]
        failed[key] = f'{status} in round {rnd}'
        return row
    times = [t * 1e3 for t in result['times_s']]
    ms = statistics.median(times)
    peak = result.get('peak_bytes')
    row.update(
        time_ms=round(ms, 2), iter_ms=';'.join(f'{t:.2f}' for t in times),
        img_per_s=round(case['batch'] / ms * 1e3, 2),
        peak_mem_MiB='' if peak is None else round(peak / 2**20, 1),
        params_M=round(result['params'] / 1e6, 3),
        note='; '.join(n for n in (result.get('note'),
                                   source_note(name, result, args)) if n))
    return row


def source_note(name, result, args):
    """Which checkout's soft_mm a SOFT row ran (when there are two)."""
    if not result.get('source') or not args.before_root:
        return ''
    return ('soft_mm of --before-root' if name.endswith('-before') else
            'soft_mm of this tree')


def format_row(row):
    cfg = (f"r{row['round']} {row['model']:<22} {row['pass']:<5} "
           f"{row['height']}x{row['width']} b{row['batch']} "
           f"{row['precision']} compile={row['compile']}")
    if row['status'] != 'ok':
        return f'{cfg}: {row["status"]} ({row.get("note", "")})'
    load = (f"others {row['others_cpu']} CPU" if row.get('others_cpu') != ''
            else '')
    return (f"{cfg}: {row['time_ms']:9.1f} ms  peak {row['peak_mem_MiB']} "
            f"MiB  ({row['wall_s']} s, {load}"
            f"{', BUSY' if row.get('busy') else ''})  {row['note']}")


# ---------------------------------------------------------------- results


def summarise(rows, args):
    """One dict per (table, model): min / median / max over the rounds,
    median peak memory, ratios to the table's baseline."""
    out = []
    for case in args.cases:
        models = case['models']
        baseline = args.baseline if args.baseline in models else models[0]
        entries = {}
        for name in models:
            mine = [r for r in rows
                    if r['table'] == case['table'] and r['model'] == name]
            ok = [r for r in mine if r['status'] == 'ok']
            entry = dict(table=case['table'], title=case_title(case),
                         model=name, baseline=baseline,
                         rounds=f'{len(ok)}/{args.rounds}')
            bad = [r for r in mine if r['status'] != 'ok']
            if ok:
                times = [r['time_ms'] for r in ok]
                peaks = [r['peak_mem_MiB'] for r in ok
                         if r['peak_mem_MiB'] != '']
                med = statistics.median(times)
                entry.update(
                    status='ok', min_ms=min(times), median_ms=med,
                    max_ms=max(times),
                    img_per_s=round(case['batch'] / med * 1e3, 2),
                    peak_MiB=(round(statistics.median(peaks), 1)
                              if peaks else None),
                    params_M=ok[0]['params_M'], note=ok[0]['note'],
                    busy_rounds=sum(1 for r in ok if r['busy']))
                if bad:
                    entry['note'] += (f"; {bad[0]['status']}: "
                                      f"{bad[0].get('note', '')}")
            else:
                entry.update(status=bad[0]['status'] if bad else 'missing',
                             note=bad[0].get('note', '') if bad else '')
            entries[name] = entry
        base = entries.get(baseline)
        for entry in entries.values():
            if base and base['status'] == 'ok' and entry['status'] == 'ok':
                entry['time_ratio'] = entry['median_ms'] / base['median_ms']
                if entry['peak_MiB'] and base['peak_MiB']:
                    entry['mem_ratio'] = entry['peak_MiB'] / base['peak_MiB']
            out.append(entry)
    return out


def header_lines(header):
    roots = ', '.join(f'{k}: {v}' for k, v in header['roots'].items())
    lines = [
        f"machine: {header['cpu']}; nproc {header['nproc']} "
        f"({header['cpu_count']} logical CPUs); device {header['device']}"
        + (f" ({header['gpu']})" if header.get('gpu') else ''),
        f"torch {header['torch']}, python {header['python']}, "
        f"{header['threads']} threads per measurement",
        f'soft_mm: {roots}',
        f"protocol: {header['rounds']} interleaved rounds, a fresh python "
        f"process per measurement, {header['warmup']} warm-up + "
        f"{header['iters']} timed steps each; a round's time is the median "
        'of its timed steps',
        f"busy: load from other processes above {header['busy_threshold']:g}"
        ' (1-min load average; CPU time of others from /proc/stat)',
    ]
    if header.get('command'):
        lines.insert(0, f"command: {header['command']}  ({header['date']})")
    return lines


def _fmt(value, spec='.1f'):
    return '' if value is None else format(value, spec)


def markdown(header, summary, args) -> str:
    """The header, the load record and one table per case."""
    lines = [f'# Benchmark ({args.mode})', '']
    if header['warnings']:
        lines += [
            '> **WARNING: THE MACHINE WAS BUSY DURING THIS BENCHMARK. THE '
            'TIMES ARE NOT TRUSTWORTHY: do not publish them; rerun on a '
            'quiet machine.**', '>'
        ] + [f'> - {w}' for w in header['warnings'][:20]] + ['']
    lines += [f'- {ln}' for ln in header_lines(header)]
    loads = '; '.join(
        f"{d['label']}: {' '.join(f'{v:.2f}' for v in d['load'])}"
        + (' **BUSY**' if d['busy'] else '') for d in header['loads'])
    lines += [f'- load average (1 / 5 / 15 min): {loads}', '']
    tables = {}
    for entry in summary:
        tables.setdefault((entry['table'], entry['title']), []).append(entry)
    for (_, title), entries in tables.items():
        base = entries[0]['baseline']
        lines += [
            f'## {title}', '',
            f'| model | min ms | median ms | max ms | img/s | time vs '
            f'{base} | peak MiB | memory vs {base} | params (M) | rounds '
            '| notes |', '|' + '---|' * 11
        ]
        for e in entries:
            if e['status'] != 'ok':
                cells = [e['model'], '', e['status'], '', '', '', '', '', '',
                         e['rounds'], e['note']]
            else:
                note = e['note'] + (f"; {e['busy_rounds']} busy round(s)"
                                    if e['busy_rounds'] else '')
                cells = [
                    e['model'], _fmt(e['min_ms']), _fmt(e['median_ms']),
                    _fmt(e['max_ms']), e['img_per_s'],
                    _fmt(e.get('time_ratio'), '.2f') + 'x'
                    if e.get('time_ratio') else '',
                    _fmt(e['peak_MiB']),
                    _fmt(e.get('mem_ratio'), '.2f') + 'x'
                    if e.get('mem_ratio') else '', e['params_M'],
                    e['rounds'], note.strip('; ')
                ]
            lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
        lines.append('')
    return '\n'.join(lines)


def main(argv=None, loadavg=read_loadavg, cpu_seconds=cpu_busy_seconds) -> int:
    args = parse_args(argv)
    rows, _, _ = run(args, loadavg=loadavg, cpu_seconds=cpu_seconds)
    return 0 if any(r['status'] == 'ok' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
