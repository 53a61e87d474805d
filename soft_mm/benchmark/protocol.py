# Copyright (c) soft_mm contributors. All rights reserved.
"""The measurement protocol of every soft_mm benchmark.

Every case of every table is measured in the same run, in interleaved
rounds (round 1: A B C, round 2: A B C, ...), each measurement in a fresh
``python`` process (:mod:`soft_mm.benchmark.measure`: its own imports,
allocator and peak-RSS mark) that runs ``warmup`` untimed and ``iters``
timed steps; a round's time is the median of its timed steps, and the
summary gives min / median / max over the rounds, the median peak memory,
and ratios to a baseline. The load average is read before and after the
run and at every round, the CPU time other processes took during each
measurement from ``/proc/stat``; a busy machine is said loudly
(:class:`~soft_mm.benchmark.machine.LoadMonitor`).
"""
import csv
import datetime
import json
import math
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .allocators import ALLOCATOR_VARS
from .machine import (LoadMonitor, banner, cpu_busy_seconds, git_describe,
                      machine_info, read_loadavg)
from .measure import RESULT_TAG
from .report import header_lines

#: The script one measurement's process runs.
MEASURE_SCRIPT = osp.join(osp.dirname(osp.abspath(__file__)), 'measure.py')
#: The checkout this library belongs to (the directory holding soft_mm).
#: realpath: tools/setup.sh links <site-packages>/soft_mm to the checkout.
CURRENT_ROOT = osp.dirname(osp.dirname(osp.dirname(
    osp.realpath(__file__))))

#: Columns of every row, after the case's ``name`` and ``settings``.
MEASUREMENT_FIELDS = ('device', 'threads', 'status', 'time_ms', 'iter_ms',
                      'img_per_s', 'peak_mem_MiB', 'process_MiB',
                      'params_M', 'load1_start',
                      'others_cpu', 'wall_s', 'busy', 'note')


@dataclass
class Case:
    """One measured configuration: a row of a table, measured once per
    round.

    Args:
        table (int): The table it belongs to (ratios are within a table).
        name (str): Its label in the table (a model, a variant).
        subject (dict): What :mod:`~soft_mm.benchmark.measure` builds.
        settings (dict): ``pass`` and, for models, ``height``, ``width``,
            ``batch``, ``precision``, ``compile``: given to the measurement
            and recorded in every row.
        root (str): The soft_mm checkout its process imports.
        skip (str, optional): Why it is not run (said once, in round 1).
        note (str): Added to the notes of its rows.
        skip_fields (dict): Extra columns of its skipped row (e.g. what a
            gate predicted it would have measured).
        env (dict): Extra environment of its process (e.g. an allocator
            setting, see :mod:`~soft_mm.benchmark.allocators`).
    """
    table: int
    name: str
    subject: dict
    settings: dict
    root: str = CURRENT_ROOT
    skip: Optional[str] = None
    note: str = ''
    failed: Optional[str] = field(default=None, repr=False)
    skip_fields: dict = field(default_factory=dict, repr=False)
    env: dict = field(default_factory=dict)


def child_env(threads: Optional[int], root: str,
              extra: Optional[Dict[str, str]] = None) -> dict:
    """The environment of a measurement's process: ``root`` first on
    ``PYTHONPATH``, ``threads`` for every thread pool, one compile worker
    for ``torch.compile`` (its workers would otherwise add load while the
    measurement is being prepared), and ``extra``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [root, env.get('PYTHONPATH', '')]))
    if threads:
        for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS',
                    'OPENBLAS_NUM_THREADS'):
            env[var] = str(threads)
    env.setdefault('TORCHINDUCTOR_COMPILE_THREADS', '1')
    env.update(extra or {})
    return env


def child_command(cfg: dict) -> List[str]:
    """The command line of one measurement (``-P``: the script's folder is
    not put on ``sys.path``, so that ``PYTHONPATH`` decides which soft_mm
    is imported)."""
    return [sys.executable, '-P', MEASURE_SCRIPT, json.dumps(cfg)]


def parse_child_output(stdout: str) -> Optional[dict]:
    """The measurement's result dict, or None if it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return None


def measure_in_fresh_process(cfg: dict, timeout: float, env: dict,
                             cwd: Optional[str] = None,
                             cpu_seconds: Callable[[], float] =
                             cpu_busy_seconds):
    """Run one measurement in a new ``python`` process.

    Returns:
        tuple[dict, float, float | None]: The result (``status`` and
        fields), the wall time, and the CPU-seconds other processes took
        meanwhile (None where ``/proc/stat`` is unreadable).
    """
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_self = time.process_time()
    before_busy = cpu_seconds()
    start = time.monotonic()
    try:
        proc = subprocess.run(child_command(cfg), capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        result = dict(status='timeout',
                      note=f'took longer than {timeout:.0f} s')
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


class Benchmark:
    """Measure ``cases`` in interleaved rounds, each in a fresh process.

    Args:
        cases (Sequence[Case]): Every row of every table.
        rounds (int): Measurements per case.
        iters (int): Timed steps per measurement.
        warmup (int): Untimed steps first.
        threads (int): CPU threads of every measurement.
        device (str): Where the measurements run.
        monitor (LoadMonitor): Load readings and the busy rule.
        timeout (float): Seconds a measurement may take.
        env (dict, optional): Extra environment of every measurement.
        name_field (str): Column of the case name in the rows.
        extra_fields (Sequence[str]): Columns of what the subjects report
            besides time and memory (e.g. ``'err'``).
        out_csv (str, optional): Write every row here as it comes.
        cwd (str, optional): Working directory of the measurements.
        log (callable): Prints progress (one line per measurement).
        gate (callable, optional): ``gate(case, rows_so_far)`` before a
            case's first measurement: None runs it, ``(why, fields)`` skips
            it for every round, ``fields`` going into its row (e.g. a
            prediction from the smaller sizes already measured).
    """

    def __init__(self,
                 cases: Sequence[Case],
                 rounds: int,
                 iters: int,
                 warmup: int,
                 threads: int,
                 device: str,
                 monitor: LoadMonitor,
                 timeout: float = 900,
                 env: Optional[Dict[str, str]] = None,
                 name_field: str = 'model',
                 extra_fields: Sequence[str] = (),
                 out_csv: Optional[str] = None,
                 cwd: Optional[str] = None,
                 log: Callable[[str], None] = print,
                 gate: Optional[Callable] = None):
        self.cases = list(cases)
        self.gate = gate
        self.rounds, self.iters, self.warmup = rounds, iters, warmup
        self.threads, self.device = threads, device
        self.monitor, self.timeout, self.env = monitor, timeout, env or {}
        self.name_field, self.out_csv, self.log = name_field, out_csv, log
        self.cwd = cwd
        settings = []
        for case in self.cases:
            settings += [k for k in case.settings if k not in settings]
        self.fields = (['table', 'round', 'seq', name_field] + settings +
                       list(MEASUREMENT_FIELDS) + list(extra_fields))

    def run(self) -> List[dict]:
        """All rounds; returns the rows (one per measurement, and one for
        each case that was skipped or failed, in the round it did)."""
        rows = []
        load1, busy = self.monitor.read('before the run')
        if busy:
            self.log(banner(self.monitor.warnings, self.monitor.threshold))
        out = open(self.out_csv, 'w', newline='') if self.out_csv else None
        writer = (csv.DictWriter(out, fieldnames=self.fields)
                  if out else None)
        if writer:
            writer.writeheader()
        try:
            seq = 0
            for rnd in range(1, self.rounds + 1):
                if rnd > 1:
                    load1, busy = self.monitor.read(
                        f'round {rnd} start', own=self.threads)
                self.log(f'--- round {rnd}/{self.rounds}: 1-min load '
                         f'{load1:.2f}' + (' (BUSY)' if busy else ''))
                for case in self.cases:
                    seq += 1
                    if rnd == 1 and self.gate and not case.skip:
                        verdict = self.gate(case, rows)
                        if verdict is not None:
                            case.skip, case.skip_fields = verdict
                    row = self.measure(case, rnd, seq, load1, busy)
                    if row is None:
                        continue
                    rows.append(row)
                    if writer:
                        writer.writerow(row)
                        out.flush()
                    self.log(format_row(row, self.name_field))
        finally:
            if out:
                out.close()
        self.monitor.read('after the run', own=self.threads)
        return rows

    def measure(self, case: Case, rnd: int, seq: int, load1: float,
                busy: bool) -> Optional[dict]:
        """One row: a measurement, or why there is none (None: an earlier
        row says so)."""
        row = {'table': case.table, 'round': rnd, 'seq': seq,
               self.name_field: case.name, **case.settings,
               'device': self.device, 'threads': self.threads,
               'load1_start': round(load1, 2), 'busy': 'yes' if busy else ''}
        if case.skip or case.failed:
            if rnd > 1:
                return None  # round 1's row says it
            row.update(status='skipped', note=case.skip or case.failed)
            if case.skip:
                row.update(case.skip_fields)
            return row
        cfg = dict(subject=case.subject, device=self.device,
                   threads=self.threads, iters=self.iters,
                   warmup=self.warmup, soft_root=case.root,
                   record_env=ALLOCATOR_VARS, **case.settings)
        result, wall, others_s = measure_in_fresh_process(
            cfg, self.timeout,
            child_env(self.threads, case.root, {**self.env, **case.env}),
            cwd=self.cwd, cpu_seconds=self.monitor.cpu_seconds)
        others = None if others_s is None else others_s / max(wall, 1e-9)
        if self.monitor.others_busy(f'round {rnd}, {case.name} (table '
                                    f'{case.table})', others):
            row['busy'] = 'yes'
        row.update(wall_s=round(wall, 1), status=result['status'],
                   others_cpu='' if others is None else round(others, 2))
        if result['status'] != 'ok':
            row['note'] = str(result.get('note', ''))[:300]
            case.failed = f'{result["status"]} in round {rnd}'
            return row
        times = [t * 1e3 for t in result['times_s']]
        peak = result.get('peak_bytes')
        ms = statistics.median(times)
        if 'batch' in case.settings:
            row['img_per_s'] = round(case.settings['batch'] / ms * 1e3, 2)
        row.update(
            time_ms=round(ms, 2),
            iter_ms=';'.join(f'{t:.2f}' for t in times),
            peak_mem_MiB='' if peak is None else round(peak / 2**20, 1),
            process_MiB=_mib(result.get('process_peak_bytes')),
            params_M=(round(result['params'] / 1e6, 3)
                      if 'params' in result else ''),
            note='; '.join(n for n in (result.get('note'), case.note) if n))
        for key, value in result.get('extra', {}).items():
            row[key] = value
        return row


def _mib(value) -> object:
    """Bytes to MiB (one decimal); ``''`` for missing or nan."""
    if value is None or value != value:
        return ''
    return round(value / 2**20, 1)


def format_row(row: dict, name_field: str = 'model') -> str:
    """One progress line."""
    settings = ' '.join(
        f'{k}={row[k]}' for k in row
        if k not in ('table', 'round', 'seq', name_field, 'device',
                     'threads', 'load1_start', 'busy')
        and k not in MEASUREMENT_FIELDS and not isinstance(row[k], float))
    head = f"r{row['round']} {row[name_field]:<22} {settings}"
    if row['status'] != 'ok':
        return f'{head}: {row["status"]} ({row.get("note", "")})'
    load = (f"others {row['others_cpu']} CPU"
            if row.get('others_cpu') != '' else '')
    return (f"{head}: {row['time_ms']:9.1f} ms  peak {row['peak_mem_MiB']} "
            f"MiB  ({row['wall_s']} s, {load}"
            f"{', BUSY' if row.get('busy') else ''})  {row.get('note', '')}")


def summarise(cases: Sequence[Case], rows: Sequence[dict], rounds: int,
              baselines: Dict[int, str],
              name_field: str = 'model') -> List[dict]:
    """One entry per case: min / median / max over the rounds, median peak
    memory, and ratios to its table's baseline.

    Args:
        cases (Sequence[Case]): The cases, in table order.
        rows (Sequence[dict]): What :meth:`Benchmark.run` returned.
        rounds (int): Rounds asked for.
        baselines (dict): Table to the name of its baseline case.
        name_field (str): Column of the case name in the rows.

    Returns:
        list[dict]: ``table``, ``name``, ``baseline``, ``rounds``
        (``'ok/asked'``), ``status``, and for measured cases ``min_ms``,
        ``median_ms``, ``max_ms``, ``peak_MiB`` (above the process's level
        at the start), ``process_MiB`` (the whole process's peak resident
        set, CPU), ``params_M``, ``note``,
        ``busy_rounds``, ``extra`` (the first round's extra fields),
        ``time_ratio`` / ``mem_ratio`` (this / baseline).
    """
    measurement = set(MEASUREMENT_FIELDS) | {'table', 'round', 'seq',
                                             name_field}
    entries = []
    for case in cases:
        mine = [r for r in rows
                if r['table'] == case.table and r[name_field] == case.name]
        ok = [r for r in mine if r['status'] == 'ok']
        bad = [r for r in mine if r['status'] != 'ok']
        entry = dict(table=case.table, name=case.name,
                     baseline=baselines[case.table],
                     rounds=f'{len(ok)}/{rounds}')
        if ok:
            times = [r['time_ms'] for r in ok]
            peaks = [r['peak_mem_MiB'] for r in ok
                     if r['peak_mem_MiB'] != '']
            process = [r['process_MiB'] for r in ok
                       if r.get('process_MiB', '') != '']
            entry.update(
                status='ok', min_ms=min(times),
                median_ms=statistics.median(times), max_ms=max(times),
                peak_MiB=(round(statistics.median(peaks), 1)
                          if peaks else None),
                process_MiB=(round(statistics.median(process), 1)
                             if process else None),
                params_M=ok[0]['params_M'], note=ok[0]['note'],
                busy_rounds=sum(1 for r in ok if r['busy']),
                extra={k: v for k, v in ok[0].items()
                       if k not in measurement and k not in case.settings})
            if bad:
                entry['note'] += (f"; {bad[0]['status']}: "
                                  f"{bad[0].get('note', '')}")
        else:
            entry.update(status=bad[0]['status'] if bad else 'missing',
                         note=bad[0].get('note', '') if bad else '')
        entries.append(entry)
    by_key = {(e['table'], e['name']): e for e in entries}
    for entry in entries:
        base = by_key.get((entry['table'], entry['baseline']))
        if base and base['status'] == 'ok' and entry['status'] == 'ok':
            entry['time_ratio'] = entry['median_ms'] / base['median_ms']
            if entry['peak_MiB'] and base['peak_MiB']:
                entry['mem_ratio'] = entry['peak_MiB'] / base['peak_MiB']
    return entries


def run_benchmark(cases: Sequence[Case],
                  *,
                  rounds: int,
                  iters: int,
                  warmup: int,
                  threads: int,
                  device: str,
                  out_stem: str,
                  baselines: Dict[int, str],
                  roots: Dict[str, str],
                  command: str = '',
                  busy_load: Optional[float] = None,
                  timeout: float = 900,
                  env: Optional[Dict[str, str]] = None,
                  name_field: str = 'model',
                  extra_fields: Sequence[str] = (),
                  loadavg: Callable[[], tuple] = read_loadavg,
                  cpu_seconds: Callable[[], float] = cpu_busy_seconds,
                  log: Callable[[str], None] = print,
                  gate: Optional[Callable] = None
                  ) -> Tuple[List[dict], List[dict], dict]:
    """Record the machine, measure every case (:class:`Benchmark`, every
    row into ``OUT_STEM.csv``) and summarise.

    ``loadavg`` and ``cpu_seconds`` are injectable (tests fake a quiet or a
    loaded machine with them); the other arguments are
    :class:`Benchmark`'s (``gate`` too), plus ``out_stem`` (path without
    suffix),
    ``baselines`` (table to baseline case), ``roots`` (label to soft_mm
    checkout, for the header) and ``command`` (for the header).

    Returns:
        tuple[list, list, dict]: The rows, the summary
        (:func:`summarise`) and the header (machine, protocol, loads,
        warnings).
    """
    info = machine_info(device, threads)
    monitor = LoadMonitor(info['nproc'], threads, busy_load, loadavg=loadavg,
                          cpu_seconds=cpu_seconds)
    header = dict(
        info, date=datetime.datetime.now().isoformat(timespec='seconds'),
        command=command,
        roots={k: f'{v} ({git_describe(v)})' for k, v in roots.items()},
        rounds=rounds, iters=iters, warmup=warmup,
        busy_threshold=monitor.threshold)
    out_dir = osp.dirname(osp.abspath(out_stem))
    os.makedirs(out_dir, exist_ok=True)
    for line in header_lines(header):
        log(line)
    rows = Benchmark(cases, rounds, iters, warmup, threads, device, monitor,
                     timeout, env, name_field, extra_fields,
                     out_csv=out_stem + '.csv', cwd=out_dir, log=log,
                     gate=gate).run()
    header.update(
        load_before=monitor.readings[0][1],
        load_after=monitor.readings[-1][1],
        loads=[dict(label=lb, load=ld, others=round(o, 2), busy=b)
               for lb, ld, o, b in monitor.readings],
        warnings=monitor.warnings)
    return rows, summarise(cases, rows, rounds, baselines, name_field), header
