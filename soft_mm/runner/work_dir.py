# Copyright (c) soft_mm contributors. All rights reserved.
"""One training at a time per work dir: two would share a timestamped folder
and overwrite each other's checkpoints."""
import errno
import fcntl
import os
import os.path as osp

#: Name of the lock file a training holds in its work dir.
LOCK_NAME = '.soft_mm_train.lock'


class WorkDirBusyError(RuntimeError):
    """Another training holds the work dir."""


class WorkDirLock:
    """An exclusive lock on ``work_dir`` for the life of this process.

    ``flock`` on a file in the work dir: the kernel releases it when the
    process ends, however it ends, so a crashed run leaves no stale lock.
    The holder's pid is written into the file for the error message.

    Args:
        work_dir (str): The run's work dir (created if missing).
    """

    def __init__(self, work_dir: str):
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd = None

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 64).decode(errors='replace').strip()
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise WorkDirBusyError(
                f'{osp.dirname(self.path)}: another training '
                f'(pid {holder or "?"}) is using this work dir; wait for it '
                'to end or choose another --work-dir') from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
