# Copyright (c) soft_mm contributors. All rights reserved.
"""One training per work dir: the lock, held for the life of a process."""
import os
import subprocess
import sys

import pytest

from soft_mm.runner import LOCK_NAME, WorkDirBusyError, WorkDirLock
from tool_utils import ROOT


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    work_dir = tmp_path / 'new' / 'dir'  # created on acquire
    with WorkDirLock(str(work_dir)):
        assert (work_dir / LOCK_NAME).read_text() == str(os.getpid())
        with pytest.raises(WorkDirBusyError,
                           match=rf'{work_dir}: .*\(pid {os.getpid()}\)'):
            WorkDirLock(str(work_dir)).acquire()
    WorkDirLock(str(work_dir)).acquire().release()


def test_lock_of_a_killed_run_is_not_stale(tmp_path):
    holder = subprocess.Popen([
        sys.executable, '-c',
        'import sys, time; from soft_mm.runner import WorkDirLock; '
        f'WorkDirLock({str(tmp_path)!r}).acquire(); print("held", '
        'flush=True); time.sleep(60)'
    ], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(WorkDirBusyError, match=f'pid {holder.pid}'):
            WorkDirLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    WorkDirLock(str(tmp_path)).acquire().release()
