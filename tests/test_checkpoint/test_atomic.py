# Copyright (c) soft_mm contributors. All rights reserved.
"""Atomic saves: a failing or killed save leaves the previous file whole
and never a partial file under the final name; mmengine's own checkpoint
writes go through the same mechanism."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.fileio import get_file_backend

import soft_mm  # noqa: F401  (registers the atomic local backend)
from soft_mm.checkpoint import (AtomicLocalBackend, atomic_write,
                                atomic_write_bytes, save_checkpoint_file)
from tool_utils import ROOT


def leftovers(folder):
    return [p for p in os.listdir(folder) if p.endswith('.tmp')]


def test_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / 'sub' / 'x.bin'
    atomic_write_bytes(b'first', path)
    atomic_write_bytes(b'second', path)
    assert path.read_bytes() == b'second'
    assert leftovers(path.parent) == []
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize('error', [
    OSError(errno.ENOSPC, 'No space left on device'),
    KeyboardInterrupt()])
def test_a_failed_write_keeps_the_previous_file(tmp_path, error):
    path = tmp_path / 'ckpt.pth'
    atomic_write_bytes(b'previous checkpoint', path)

    def half_then_fail(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'half a checkpo')
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b'previous checkpoint'
    assert leftovers(tmp_path) == []


def test_a_failed_torch_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'converted.pth'
    save_checkpoint_file({'state_dict': {'w': torch.ones(3)}, 'meta': {}},
                         str(path))

    def full_disk(obj, f, *args, **kwargs):
        with open(f, 'wb') as out:
            out.write(b'PK\x03\x04 partial')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match='No space left'):
        save_checkpoint_file({'state_dict': {'w': torch.zeros(3)}},
                             str(path))
    monkeypatch.undo()
    assert torch.equal(torch.load(path)['state_dict']['w'], torch.ones(3))
    assert leftovers(tmp_path) == []


def test_an_unwritable_folder_fails_clearly(tmp_path):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('a file where the folder should be')
    with pytest.raises(OSError):
        atomic_write_bytes(b'x', blocker / 'ckpt.pth')
    assert blocker.read_text() == 'a file where the folder should be'


# Writes 64 MiB checkpoints to one path, over and over, printing the index
# of every completed save.
SAVER = '''
import sys
import torch
import soft_mm
from soft_mm.checkpoint import atomic_write
path = sys.argv[1]
for i in range(1, 1000):
    state = {'i': i, 'w': torch.full((16 * 2**20, ), float(i))}
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    print(i, flush=True)
'''


def test_a_kill_mid_save_leaves_a_whole_file(tmp_path):
    path = tmp_path / 'ckpt.pth'
    for delay in (0.4, 1.3, 2.2):
        proc = subprocess.Popen([sys.executable, '-c', SAVER, str(path)],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        first = proc.stdout.readline()  # one save done
        assert first.strip(), 'the saver did not start'
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = torch.load(path, weights_only=True)  # whole, never partial
        assert ckpt['w'].numel() == 16 * 2**20
        assert torch.equal(ckpt['w'][:3], torch.full((3, ), float(ckpt['i'])))


def test_mmengine_writes_are_atomic(tmp_path):
    backend = get_file_backend(str(tmp_path / 'x.pth'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'bytes', tmp_path / 'x.pth')
    backend.put_text('text', tmp_path / 'y.txt')
    assert (tmp_path / 'x.pth').read_bytes() == b'bytes'
    assert (tmp_path / 'y.txt').read_text() == 'text'
    # CheckpointHook writes its `last_checkpoint` pointer with open(): in
    # that module it is atomic too.
    from mmengine.hooks import checkpoint_hook
    with checkpoint_hook.open(tmp_path / 'last_checkpoint', 'w') as f:
        f.write('/work/epoch_3.pth')
    assert (tmp_path / 'last_checkpoint').read_text() == '/work/epoch_3.pth'
    assert leftovers(tmp_path) == []
