# Copyright (c) soft_mm contributors. All rights reserved.
"""Save on the preemption signal, so that ``--resume`` loses nothing."""
import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import Callable, Optional, Sequence

import torch
from mmengine.dist import (all_reduce, barrier, get_rank, get_world_size,
                           is_main_process)
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader

from soft_mm.checkpoint import atomic_write_bytes
from ..runners import ResumableEpochBasedTrainLoop
from .rng_state_hook import RNGStateHook, _training

#: Exit status of a run that stopped on the signal after saving (sysexits'
#: EX_TEMPFAIL: "try again later": ``--resume`` continues it).
EXIT_PREEMPTED = 75
#: Checkpoint meta key describing where a preempted run stopped.
META_KEY = 'preemption'


class IgnoreSignalsInWorker:
    """A DataLoader ``worker_init_fn`` that makes the worker ignore the
    stop signals from anyone but its parent, then calls the loader's own
    ``worker_init_fn``.

    A scheduler signals every process of the job, DataLoader workers
    included; a worker ends on SIGTERM (PyTorch's worker handler) or runs
    the hook's handler on SIGUSR1, and the main process then fails with
    "DataLoader worker ... is killed by signal" before it can save. The
    main process alone decides when to stop. Its own SIGTERM still ends a
    worker (``multiprocessing`` terminates daemonic workers at exit, and
    waits for them): the signals are blocked and a thread takes them with
    ``sigwaitinfo``, which tells who sent each. A picklable class, not a
    closure: ``spawn`` workers unpickle it. Where ``sigwaitinfo`` does not
    exist (macOS), workers keep PyTorch's handling.

    Args:
        signals (Sequence[int]): Signal numbers to ignore.
        init_fn (Callable, optional): The loader's ``worker_init_fn``.
    """

    def __init__(self, signals: Sequence[int],
                 init_fn: Optional[Callable] = None) -> None:
        self.signals = tuple(int(s) for s in signals)
        self.init_fn = init_fn

    @staticmethod
    def supported() -> bool:
        return hasattr(signal, 'sigwaitinfo')

    def __call__(self, worker_id: int) -> None:
        if self.supported():
            parent = os.getppid()
            for signum in self.signals:
                # Not SIG_IGN: Linux drops an ignored signal before
                # sigwaitinfo could take it. A no-op in case a thread that
                # does not block it gets one.
                signal.signal(signum, _do_nothing)
            signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
            threading.Thread(target=_end_on_parents_signal,
                             args=(self.signals, parent), daemon=True,
                             name='soft_mm-worker-signals').start()
        if self.init_fn is not None:
            self.init_fn(worker_id)


def _do_nothing(signum, frame) -> None:
    pass


def _end_on_parents_signal(signals: Sequence[int], parent: int) -> None:
    """In a worker: take the blocked ``signals`` one by one; end the worker
    on one its parent sent (status 0: the parent asked for it, and
    PyTorch's SIGCHLD handler in the parent reports any other status as a
    worker failure)."""
    while True:
        info = signal.sigwaitinfo(signals)
        if info.si_pid == parent:
            os._exit(0)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Stop on SIGTERM / SIGUSR1 at the end of the current iteration, with
    a checkpoint that ``--resume`` continues exactly.

    Clusters end jobs with a signal (SLURM: SIGTERM, or the one asked for
    with ``--signal=USR1@120``) and kill them shortly after. On the first
    signal every rank finishes its current training iteration; the ranks
    agree (an all-reduce each ``check_interval`` iterations: all stop at the
    same iteration, even when only some got the signal), save one
    checkpoint named ``iter_<N>.pth`` with the model, optimizer,
    schedulers, message hub, EMA weights and every rank's RNG state
    (``RNGStateHook``), point ``last_checkpoint`` at it, and exit with
    :data:`EXIT_PREEMPTED` (75). ``ResumableEpochBasedTrainLoop`` then
    resumes inside the epoch. A signal during a validation stops when the
    validation ends, at the epoch boundary; one before the first iteration
    exits at once (nothing new to save). DataLoader workers of the
    training and validation loaders ignore the signals unless their parent
    sends them (:class:`IgnoreSignalsInWorker`). A second signal,
    or a save not done ``grace_seconds`` after the first signal, ends the
    process at once with status 128 + signal number; saves are atomic
    (:mod:`soft_mm.checkpoint.atomic`), so what is on disk stays whole.

    Args:
        signals (Sequence[str]): Signal names that mean "stop soon".
            Defaults to ``('SIGTERM', 'SIGUSR1')``.
        grace_seconds (float, optional): Hard exit this long after the
            first signal; set it below what the scheduler leaves before
            SIGKILL. None waits for the save. Defaults to 120.
        requeue (bool): After saving, on SLURM (``SLURM_JOB_ID`` set), put
            the job back in the queue with ``scontrol requeue``.
            Defaults to False.
        check_interval (int): Iterations between the ranks' agreements
            (a tiny all-reduce). Defaults to 1.
    """

    # After every other hook of the iteration (EMA update, schedulers,
    # logging, checkpoints): the saved state is the iteration's end state.
    priority = 'LOWEST'

    def __init__(self,
                 signals: Sequence[str] = ('SIGTERM', 'SIGUSR1'),
                 grace_seconds: Optional[float] = 120,
                 requeue: bool = False,
                 check_interval: int = 1) -> None:
        self.signals = [self._signal_number(name) for name in signals]
        if grace_seconds is not None and not grace_seconds > 0:
            raise ValueError('PreemptionHook: grace_seconds must be > 0 or '
                             f'None, got {grace_seconds!r}')
        if not isinstance(check_interval, int) or check_interval < 1:
            raise ValueError('PreemptionHook: check_interval must be an int '
                             f'>= 1, got {check_interval!r}')
        self.grace_seconds = grace_seconds
        self.requeue = requeue
        self.check_interval = check_interval
        self.received: Optional[int] = None
        self._previous = {}
        self._timer: Optional[threading.Timer] = None

    @staticmethod
    def _signal_number(name: str) -> int:
        number = getattr(signal, str(name), None)
        if not isinstance(number, signal.Signals):
            raise ValueError(f'PreemptionHook: unknown signal {name!r}')
        return number

    # ---- the signal

    def _on_signal(self, signum, frame) -> None:
        if self.received is not None:
            self._hard_exit(signum, 'a second signal')
        self.received = signum
        print(f'PreemptionHook: got {signal.Signals(signum).name}; saving '
              'at the end of this iteration', file=sys.stderr, flush=True)
        if self.grace_seconds is not None:
            self._timer = threading.Timer(
                self.grace_seconds, self._hard_exit,
                (signum, f'no checkpoint {self.grace_seconds:g} s after the '
                 'signal'))
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _hard_exit(signum: int, why: str) -> None:
        print(f'PreemptionHook: {why}; exiting now (status {128 + signum})',
              file=sys.stderr, flush=True)
        os._exit(128 + signum)

    def before_run(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def after_run(self, runner) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._timer is not None:
            self._timer.cancel()

    def _agreed(self) -> bool:
        """Whether any rank got the signal (a collective: every rank asks
        at the same points)."""
        flag = torch.tensor([0 if self.received is None else 1])
        if get_world_size() > 1:
            all_reduce(flag, op='max')
        return bool(flag.item())

    # ---- where the run may stop

    def _quiet_workers(self, loader) -> None:
        """Make ``loader``'s workers (started later, at its first
        iteration) ignore the signals."""
        if (not isinstance(loader, DataLoader) or not loader.num_workers
                or isinstance(loader.worker_init_fn, IgnoreSignalsInWorker)
                or not IgnoreSignalsInWorker.supported()):
            return
        loader.worker_init_fn = IgnoreSignalsInWorker(self.signals,
                                                      loader.worker_init_fn)

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        self._quiet_workers(loop.dataloader)
        val_loop = getattr(runner, '_val_loop', None)
        self._quiet_workers(getattr(val_loop, 'dataloader', None))
        if isinstance(loop, EpochBasedTrainLoop) and not isinstance(
                loop, ResumableEpochBasedTrainLoop):
            print_log(
                f'PreemptionHook: {type(loop).__name__} cannot resume '
                'inside an epoch; on a signal the run stops without saving '
                '(use ResumableEpochBasedTrainLoop, as tools/train.py does)',
                logger='current', level=30)
        if not any(isinstance(h, RNGStateHook) for h in runner.hooks):
            print_log(
                'PreemptionHook: no RNGStateHook, so a resumed run draws '
                'fresh random numbers (add dict(type="RNGStateHook") to '
                'custom_hooks for an exact resume)', logger='current',
                level=30)
        if self._agreed():
            self._stop(runner, None, 'before the first iteration')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if (runner.iter + 1) % self.check_interval:
            return
        if not self._at_update(runner) or not self._agreed():
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            where = dict(epoch=runner.epoch, iter=runner.iter + 1,
                         by_epoch=False)
        elif isinstance(loop, ResumableEpochBasedTrainLoop):
            where = dict(epoch=runner.epoch, iter=runner.iter + 1,
                         by_epoch=True, batch_in_epoch=batch_idx + 1,
                         batches_per_epoch=len(loop.dataloader))
        else:
            where = None
        self._stop(runner, where, f'after iteration {runner.iter + 1}')

    def after_val(self, runner) -> None:
        """A signal during a validation inside training stops when that
        validation ends (after every other hook: EMAHook has put the
        trained weights back), at the epoch boundary."""
        if not _training(runner) or not self._agreed():
            return
        self._stop(runner, dict(epoch=runner.epoch, iter=runner.iter,
                                by_epoch=True, batch_in_epoch=0),
                   f'during the validation after epoch {runner.epoch}')

    @staticmethod
    def _at_update(runner) -> bool:
        """Whether the last iteration updated the weights: a stop in the
        middle of gradient accumulation would lose the accumulated
        gradients, which checkpoints do not hold."""
        wrapper = runner.optim_wrapper
        counts = getattr(wrapper, '_accumulative_counts', 1)
        return counts == 1 or wrapper._inner_count % counts == 0

    # ---- saving and exiting

    def _stop(self, runner, where: Optional[dict], when: str) -> None:
        signame = signal.Signals(self.received or signal.SIGTERM).name
        path = None
        if where is not None:
            path = self._save(runner, where, signame)
        if is_main_process():
            if path:
                print_log(f'PreemptionHook: {signame} {when}: saved {path}; '
                          '`tools/train.py CONFIG --resume` continues from '
                          f'it (exit status {EXIT_PREEMPTED})',
                          logger='current')
            else:
                print_log(f'PreemptionHook: {signame} {when}: nothing new '
                          'saved; --resume continues from the last '
                          f'checkpoint (exit status {EXIT_PREEMPTED})',
                          logger='current')
            if self.requeue:
                self._requeue()
        barrier()  # no rank leaves before the checkpoint is complete
        if self._timer is not None:
            self._timer.cancel()
        raise SystemExit(EXIT_PREEMPTED)

    def _save(self, runner, where: dict, signame: str) -> str:
        for hook in runner.hooks:  # every rank's RNG state (a collective)
            if isinstance(hook, RNGStateHook):
                hook.gather(runner)
        filename = f'iter_{where["iter"]}.pth'
        meta = {
            'epoch': where['epoch'],
            'iter': where['iter'],
            META_KEY: dict(
                signal=signame, world_size=get_world_size(),
                batch_size=runner.train_dataloader.batch_size,
                batch_in_epoch=where.get('batch_in_epoch', 0),
                batches_per_epoch=where.get('batches_per_epoch'))
        }
        runner.save_checkpoint(runner.work_dir, filename, meta=meta,
                               by_epoch=where['by_epoch'])
        path = os.path.join(runner.work_dir, filename)
        if get_rank() == 0:
            atomic_write_bytes(path.encode(),
                               os.path.join(runner.work_dir,
                                            'last_checkpoint'))
        return path

    @staticmethod
    def _requeue() -> None:
        job = os.environ.get('SLURM_JOB_ID')
        if not job:
            print_log('PreemptionHook: requeue asked, but SLURM_JOB_ID is '
                      'not set (not a SLURM job)', logger='current',
                      level=30)
            return
        if shutil.which('scontrol') is None:
            print_log('PreemptionHook: requeue asked, but scontrol is not '
                      'on PATH', logger='current', level=30)
            return
        proc = subprocess.run(['scontrol', 'requeue', job],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            print_log(f'PreemptionHook: requeued SLURM job {job}',
                      logger='current')
        else:
            print_log(f'PreemptionHook: `scontrol requeue {job}` failed '
                      f'({proc.returncode}): {proc.stderr.strip()}',
                      logger='current', level=30)
