# Copyright (c) soft_mm contributors. All rights reserved.
"""PreemptionHook in-process: arguments, handlers installed and restored,
the first signal only noted. (Whole runs: tests/test_tools/
test_resume.py.)"""
import os
import pickle
import signal
import time
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from soft_mm.engine import EXIT_PREEMPTED, PreemptionHook
from soft_mm.engine.hooks.preemption_hook import IgnoreSignalsInWorker


@pytest.mark.parametrize('kwargs,match', [
    (dict(signals=['SIGNOPE']), 'unknown signal'),
    (dict(grace_seconds=0), 'grace_seconds'),
    (dict(check_interval=0), 'check_interval'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PreemptionHook(**kwargs)


def test_handlers_are_installed_and_restored(capsys):
    before = signal.getsignal(signal.SIGUSR1)
    hook = PreemptionHook(signals=['SIGUSR1'], grace_seconds=None)
    runner = SimpleNamespace()
    hook.before_run(runner)
    try:
        assert signal.getsignal(signal.SIGUSR1) == hook._on_signal
        os.kill(os.getpid(), signal.SIGUSR1)  # noted, not fatal
        assert hook.received == signal.SIGUSR1
        assert 'got SIGUSR1; saving at the end of this iteration' in \
            capsys.readouterr().err
        assert hook._agreed()  # one process: its own flag
    finally:
        hook.after_run(runner)
    assert signal.getsignal(signal.SIGUSR1) == before
    assert EXIT_PREEMPTED == 75


class _SignalsItself(torch.utils.data.Dataset):
    """Each item: the worker sends itself SIGTERM and SIGUSR1 (as a
    scheduler's signal to every process would reach it), then reports
    whether it still runs and what the loader's own init function left."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        info = torch.utils.data.get_worker_info()
        for signum in (signal.SIGTERM, signal.SIGUSR1):
            os.kill(os.getpid(), signum)
        time.sleep(0.05)  # time for a signal to act
        return ['alive', getattr(info.dataset, 'initialised_by', None)]


def _own_init(worker_id):
    torch.utils.data.get_worker_info().dataset.initialised_by = worker_id


@pytest.mark.skipif(not IgnoreSignalsInWorker.supported(),
                    reason='no signal.sigwaitinfo on this platform')
def test_loader_workers_ignore_the_signals():
    """The hook wraps the loaders' worker_init_fn (once, keeping the
    loader's own); the workers live through the signals (without the
    wrapper SIGTERM ends them and the loader raises)."""
    hook = PreemptionHook()
    loader = DataLoader(_SignalsItself(), batch_size=None, num_workers=1,
                        worker_init_fn=_own_init)
    val = DataLoader(_SignalsItself(), batch_size=None, num_workers=1)
    runner = SimpleNamespace(
        train_loop=SimpleNamespace(dataloader=loader),
        _val_loop=SimpleNamespace(dataloader=val), hooks=[])
    unprotected = DataLoader(_SignalsItself(), batch_size=None, num_workers=1)
    with pytest.raises(RuntimeError, match='DataLoader worker'):
        list(unprotected)
    hook.before_train(runner)
    hook.before_train(runner)  # not wrapped twice
    init = loader.worker_init_fn
    assert isinstance(init, IgnoreSignalsInWorker)
    assert init.init_fn is _own_init
    assert pickle.loads(pickle.dumps(init)).signals == init.signals
    assert list(loader) == [['alive', 0]] * 2
    assert list(val) == [['alive', None]] * 2
    # The main process keeps its handlers.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    # No workers: nothing to wrap.
    plain = DataLoader(_SignalsItself(), batch_size=None)
    runner.train_loop.dataloader = plain
    hook.before_train(runner)
    assert plain.worker_init_fn is None
