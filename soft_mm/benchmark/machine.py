# Copyright (c) soft_mm contributors. All rights reserved.
"""The machine a benchmark runs on, and whether it was quiet.

Times on a shared CPU mean little without the machine's state, so every
benchmark records it: :func:`machine_info` (CPU model, ``nproc``, torch
version and threads), the load average (:func:`read_loadavg`) and the CPU
time other processes took during each measurement
(:func:`cpu_busy_seconds`, ``/proc/stat``), judged by one rule
(:func:`busy_threshold`, :class:`LoadMonitor`).
"""
import math
import os
import platform
import subprocess
from typing import Dict, Optional

import torch


def _lscpu_model() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True,
                             check=True).stdout
        return next(ln.split(':', 1)[1].strip() for ln in out.splitlines()
                    if ln.startswith('Model name'))
    except Exception:
        return platform.processor() or 'unknown CPU'


def usable_cpus() -> int:
    """CPUs this process may run on (what ``nproc`` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def meminfo_MiB(field: str) -> float:
    """A ``/proc/meminfo`` field (``'MemTotal'``, ``'MemAvailable'``) in
    MiB; ``nan`` where unreadable."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


def machine_info(device='cpu', threads: Optional[int] = None) -> Dict:
    """What a benchmark's header records about the machine.

    Returns:
        dict: ``device``, ``cpu`` (model), ``nproc`` (usable CPUs),
        ``cpu_count`` (logical CPUs), ``threads`` (torch intra-op threads
        of the measurements), ``mem_GiB`` (total memory), ``torch``,
        ``python``, ``gpu`` (CUDA only).
    """
    info = dict(
        device=str(device), cpu=_lscpu_model(), nproc=usable_cpus(),
        cpu_count=os.cpu_count(),
        threads=threads if threads else torch.get_num_threads(),
        mem_GiB=round(meminfo_MiB('MemTotal') / 1024, 1),
        torch=torch.__version__, python=platform.python_version())
    if torch.device(device).type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    return info


def read_loadavg() -> tuple:
    """``os.getloadavg()``: runnable (and uninterruptible) tasks averaged
    over 1, 5 and 15 minutes; ``(nan, nan, nan)`` where unsupported."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return (math.nan, ) * 3


def cpu_busy_seconds() -> float:
    """CPU-seconds the whole machine spent busy since boot (``/proc/stat``:
    user, nice, system, irq, softirq and steal, i.e. everything but idle
    and iowait); ``nan`` where unreadable. The difference over an interval,
    less the CPU time of one's own processes, is what others took."""
    try:
        with open('/proc/stat') as f:
            fields = f.readline().split()
        ticks = [int(v) for v in fields[1:]]
    except (OSError, ValueError, IndexError):
        return math.nan
    # user nice system idle iowait irq softirq steal (guest* are included
    # in user/nice already).
    busy = sum(ticks[i] for i in (0, 1, 2, 5, 6, 7) if i < len(ticks))
    return busy / os.sysconf('SC_CLK_TCK')


def busy_threshold(nproc: int, threads: int) -> float:
    """How much load from other processes a measurement tolerates.

    Others may use at most half of the CPUs the measurement leaves free,
    and at least half a CPU's worth of background noise is tolerated: on 2
    CPUs with 2 threads that is 0.5, on 4 CPUs with 2 threads 1.0, on 16
    CPUs with 2 threads 7.

    Args:
        nproc (int): Usable CPUs.
        threads (int): CPU threads of the measurement.
    """
    return max(0.5, 0.5 * (nproc - threads))


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
