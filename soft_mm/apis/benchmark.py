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
        on a shared machine), ``mean_s`` and ``peak_bytes``.
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
        time_s=min(times), mean_s=sum(times) / len(times),
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
    """Run ``fn(**kwargs)`` in a fresh child process.

    A fresh process per configuration makes CPU peak-RSS numbers
    independent of earlier configurations; a timeout bounds slow ones.
    Children come from a ``forkserver`` that imported torch, mmpretrain
    and soft_mm once: cheap to start, and safe (forking a process whose
    OpenMP pool already ran can deadlock). ``fn`` must be importable
    (module level) and its arguments picklable.

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
                status, value = 'error', f'child exited with code {proc.exitcode}'
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
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True,
                             check=True).stdout
        model = next(ln.split(':', 1)[1].strip() for ln in out.splitlines()
                     if ln.startswith('Model name'))
    except Exception:
        model = platform.processor() or 'unknown CPU'
    return f'{model}, {os.cpu_count()} logical CPUs'


# ------------------------------------------------ models of tools/analysis_tools/benchmark.py
# Kept here (importable) because configurations run in child processes.


__all__ = [
    'PeakMemory', 'make_step', 'measure', 'run_isolated', 'machine_name',
    'reset_cpu_peak', 'synchronize'
]
