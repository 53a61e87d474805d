# Copyright (c) soft_mm contributors. All rights reserved.
"""Timing and peak-memory helpers for model benchmarks.

Peak memory is measured honestly on each device:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
  (tensor memory; the caching allocator's reserve is not counted);
- CPU: the process's peak resident set (``VmHWM``) during the measured
  call minus its resident set before it, after resetting the high-water
  mark through ``/proc/self/clear_refs``. Run each configuration in a
  fresh process (:func:`run_isolated`) so memory freed by an earlier one and
  kept by the C allocator cannot hide an allocation. Without
  ``clear_refs`` (non-Linux) the value is ``nan``.

The machine's state is recorded with every benchmark, because on a shared
CPU the times mean little without it: :func:`machine_info` (CPU model,
``nproc``, torch version and threads), :func:`read_loadavg`,
:func:`cpu_busy_seconds` (``/proc/stat``: CPU time of the whole machine, to
tell how much of it other processes took during a measurement) and the rule
:func:`busy_threshold`.
"""
import gc
import math
import multiprocessing as mp
import os
import platform
import queue as queue_mod
import subprocess
import time
import traceback
from contextlib import nullcontext
from typing import Callable, Dict, Optional

import torch


def _status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_cpu_peak() -> bool:
    """Reset this process's peak-RSS mark; False if the OS cannot."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager measuring peak memory above the level at entry.

    Args:
        device (torch.device | str): Where the work runs.

    Attributes:
        peak_bytes (float): Peak extra bytes (``nan`` if unmeasurable).
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_bytes = math.nan

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            # Collect first: a cycle freed by a gc pass inside the window
            # would lower RSS and hide the allocation being measured.
            gc.collect()
            self._ok = reset_cpu_peak()
            self._base = _status_kib('VmRSS')
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_bytes = float(
                torch.cuda.max_memory_allocated(self.device) - self._base)
        elif self._ok and self._base is not None:
            peak = _status_kib('VmHWM')
            if peak is not None:
                self.peak_bytes = float(max(peak - self._base, 0) * 1024)
        return False


def synchronize(device) -> None:
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_step(model: torch.nn.Module, inputs: torch.Tensor, train: bool,
              amp_dtype: Optional[torch.dtype]) -> Callable[[], None]:
    """One forward (inference) or forward+backward (training) call.

    Args:
        model (nn.Module): Maps images to a tensor or a tuple of tensors.
        inputs (Tensor): The batch.
        train (bool): Run backward of the sum of the outputs as well.
        amp_dtype (torch.dtype, optional): Autocast dtype, None for fp32.
    """
    device_type = inputs.device.type

    def outputs_sum(out):
        if isinstance(out, (tuple, list)):
            return sum(o.float().sum() for o in out)
        return out.float().sum()

    def step():
        ctx = (torch.autocast(device_type, dtype=amp_dtype)
               if amp_dtype is not None else nullcontext())
        if train:
            model.zero_grad(set_to_none=True)
            with ctx:
                loss = outputs_sum(model(inputs))
            loss.backward()
        else:
            with torch.no_grad(), ctx:
                model(inputs)

    return step


def measure(step: Callable[[], None],
            device,
            iters: int = 5,
            warmup: int = 2) -> Dict[str, float]:
    """Time ``step`` and measure its peak memory.

    The first ``warmup`` calls (compilation, allocator warm-up) are not
    timed; peak memory covers all calls, above the level before the first
    (model, inputs and, for ``torch.compile``, nothing compiled yet).

    Returns:
        dict: ``time_s`` (fastest call: the least disturbed by other load
        on a shared machine), ``mean_s``, ``times_s`` (every timed call)
        and ``peak_bytes``.
    """
    if iters < 1:
        raise ValueError(f'measure: iters must be >= 1, got {iters}')
    # Peak memory covers the warm-up too: memory the allocator keeps after
    # the first call would otherwise hide the activations of later ones.
    with PeakMemory(device) as mem:
        for _ in range(warmup):
            step()
        synchronize(device)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            step()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return dict(
        time_s=min(times), mean_s=sum(times) / len(times), times_s=times,
        peak_bytes=mem.peak_bytes)


def _child(queue, fn, kwargs):
    try:
        queue.put(('ok', fn(**kwargs)))
    except (torch.OutOfMemoryError, MemoryError):
        queue.put(('oom', 'out of memory'))
    except Exception as e:  # reported, the benchmark goes on
        queue.put(('error', f'{type(e).__name__}: {e}'.splitlines()[0] +
                   ' | ' + traceback.format_exc().splitlines()[-1]))


_PRELOAD = ['torch', 'mmpretrain.models', 'soft_mm']


def run_isolated(fn: Callable[..., dict],
                 timeout: Optional[float] = None,
                 **kwargs) -> tuple:
    """Run ``fn(**kwargs)`` in a new child process.

    A new process per configuration makes CPU peak-RSS numbers
    independent of earlier configurations; a timeout bounds slow ones.
    Children come from a ``forkserver`` that imported torch, mmpretrain
    and soft_mm once: cheap to start, and safe (forking a process whose
    OpenMP pool already ran can deadlock). ``fn`` must be importable
    (module level) and its arguments picklable.

    A forkserver child is a new process (own pid, memory and peak-RSS
    mark; the server never runs a model, so nothing of an earlier child
    carries over), but not a fresh interpreter: it inherits the server's
    imported modules, so it cannot import soft_mm from another checkout.
    ``tools/analysis_tools/benchmark.py`` therefore starts a ``python``
    subprocess per measurement instead.

    Returns:
        tuple[str, dict | str]: ``('ok', result)``, or ``('oom' | 'error' |
        'timeout', message)``.
    """
    ctx = mp.get_context('forkserver')
    ctx.set_forkserver_preload(_PRELOAD)
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, kwargs))
    proc.start()
    start = time.monotonic()
    while True:
        try:
            status, value = queue.get(timeout=0.2)
            break
        except queue_mod.Empty:
            if not proc.is_alive():
                status = 'error'
                value = f'child exited with code {proc.exitcode}'
                break
            if timeout is not None and time.monotonic() - start > timeout:
                proc.kill()
                status, value = 'timeout', f'took longer than {timeout:.0f} s'
                break
    proc.join()
    if status == 'error' and proc.exitcode and proc.exitcode < 0:
        value = f'killed by signal {-proc.exitcode} (out of memory?)'
    return status, value


def machine_name(device) -> str:
    """The GPU name, or the CPU model (lscpu) and its logical CPU count."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{_lscpu_model()}, {os.cpu_count()} logical CPUs'


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


def machine_info(device='cpu', threads: Optional[int] = None) -> Dict:
    """What a benchmark's header records about the machine.

    Returns:
        dict: ``device``, ``cpu`` (model), ``nproc`` (usable CPUs),
        ``cpu_count`` (logical CPUs), ``threads`` (torch intra-op threads
        of the measurements), ``torch``, ``python``, ``gpu`` (CUDA only).
    """
    info = dict(
        device=str(device), cpu=_lscpu_model(), nproc=usable_cpus(),
        cpu_count=os.cpu_count(),
        threads=threads if threads else torch.get_num_threads(),
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


__all__ = [
    'PeakMemory', 'make_step', 'measure', 'run_isolated', 'machine_name',
    'machine_info', 'read_loadavg', 'cpu_busy_seconds', 'busy_threshold',
    'usable_cpus', 'reset_cpu_peak', 'synchronize'
]
