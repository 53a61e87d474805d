# Copyright (c) soft_mm contributors. All rights reserved.
"""PreemptionHook in-process: arguments, handlers installed and restored,
the first signal only noted. (Whole runs: tests/test_tools/
test_resume.py.)"""
import os
import signal
from types import SimpleNamespace

import pytest

from soft_mm.engine import EXIT_PREEMPTED, PreemptionHook


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
