# Copyright (c) soft_mm contributors. All rights reserved.
"""Atomic saves: a file is written to a temporary name in its folder and
renamed into place, so that a kill, a full disk or a preemption during a
save leaves the previous file intact and never a truncated file under the
final name.

:func:`register_atomic_saves` (run when :mod:`soft_mm` is imported) makes
mmengine's own writes atomic too: its local file backend (checkpoints of
``CheckpointHook`` and ``Runner.save_checkpoint``) and the
``last_checkpoint`` pointer that ``--resume`` follows.
"""
import builtins
import io
import os
import os.path as osp
import tempfile
from contextlib import suppress
from typing import Callable, Union

from mmengine.fileio.backends import LocalBackend, register_backend


def atomic_write(path: Union[str, os.PathLike],
                 write: Callable[[str], None]) -> None:
    """Write the file ``path`` atomically: ``write(tmp)`` writes it under a
    temporary path, which is then renamed over ``path``.

    The temporary file has the same name as ``path`` in a fresh hidden
    folder next to it (same file system, so the rename is atomic; same
    name, so formats that record the file name, like ``torch.save``'s
    archive, come out byte for byte as if written in place). It is synced
    to disk before the rename, and the folder after it, so that the rename
    survives a crash. If anything fails (an exception in ``write``, a full
    disk, a read-only folder) the temporary files are removed, ``path`` is
    untouched and the error propagates. A process killed mid-write leaves
    at most a ``.<name>.*.tmp`` folder behind, never a partial ``path``.

    Args:
        path (str | PathLike): The file to write; its folder is created.
        write (callable): Writes the complete file at the path it is given.
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f'.{osp.basename(path)}.',
                               suffix='.tmp', dir=folder)
    tmp = osp.join(tmp_dir, osp.basename(path))
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with suppress(OSError):
            os.unlink(tmp)
        with suppress(OSError):
            os.rmdir(tmp_dir)
    with suppress(OSError):  # not every file system syncs a folder
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(data: bytes, path: Union[str, os.PathLike]) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)

    atomic_write(path, write)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


class _AtomicTextFile(io.StringIO):
    """What ``open(path, 'w')`` returns in :mod:`mmengine.hooks.
    checkpoint_hook`: the text is written atomically on close."""

    def __init__(self, path, encoding=None):
        super().__init__()
        self._path, self._encoding = path, encoding or 'utf-8'

    def close(self):
        if not self.closed:
            atomic_write_bytes(self.getvalue().encode(self._encoding),
                               self._path)
        super().close()


def _open_writing_atomically(file, mode='r', *args, **kwargs):
    if mode in ('w', 'wt') and not args:
        return _AtomicTextFile(file, kwargs.get('encoding'))
    return builtins.open(file, mode, *args, **kwargs)


def register_atomic_saves() -> None:
    """Make mmengine's local writes atomic (idempotent).

    - the ``local`` file backend (every checkpoint mmengine writes to a
      local path) becomes :class:`AtomicLocalBackend`;
    - ``CheckpointHook`` writes the ``last_checkpoint`` pointer with a bare
      ``open(path, 'w')``: in that module ``open`` writes atomically.
    """
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    from mmengine.hooks import checkpoint_hook
    checkpoint_hook.open = _open_writing_atomically
