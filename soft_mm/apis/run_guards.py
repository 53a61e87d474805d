# Copyright (c) soft_mm contributors. All rights reserved.
"""Checks the train and test tools make before mmengine's Runner touches
weights or the work dir, where mmengine would go on with a warning.

- a test checkpoint must fit the model exactly (mmengine loads what fits);
- a resume checkpoint must be a training checkpoint whose weights fit
  (mmengine warns and trains the random tensors on);
- one training at a time per work dir (two would share a timestamped
  folder and overwrite each other's checkpoints).
"""
import errno
import fcntl
import os
import os.path as osp
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import CheckpointLoader
from mmengine.runner.checkpoint import find_latest_checkpoint

from soft_mm.checkpoint import CheckpointError, fitting_state_dict

#: Name of the lock file a training holds in its work dir.
LOCK_NAME = '.soft_mm_train.lock'


def unwrap_model(model: nn.Module) -> nn.Module:
    """The classifier inside DDP / TTA wrappers."""
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        model = model.module
    return model


def read_checkpoint(path: str):
    """Read ``path`` through mmengine's loaders (soft_mm's schemes, safe
    local files, ``.safetensors``).

    Raises:
        CheckpointError: Missing, unreadable or not a checkpoint.
    """
    try:
        return CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except FileNotFoundError:
        raise CheckpointError(f'{path}: no such file') from None


def check_weights_fit(model: nn.Module, path: str, ckpt=None) -> None:
    """Raise :class:`CheckpointError` unless the weights in ``path`` fit
    ``model`` key for key, shape for shape.

    Args:
        model (nn.Module): The (possibly wrapped) model.
        path (str): Checkpoint file or scheme URL.
        ckpt (dict, optional): ``path`` already read.
    """
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    fitting_state_dict(unwrap_model(model), ckpt, path)


def resolve_resume(work_dir: str, resume: Optional[str]) -> Optional[str]:
    """The checkpoint a ``--resume`` (``'auto'`` or a path) resumes from,
    or None (auto-resume with no checkpoint yet: a fresh start)."""
    if resume == 'auto':
        return find_latest_checkpoint(work_dir)
    return resume


def check_resumable(model: nn.Module, path: str) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a training
    checkpoint (weights, optimizer state, epoch/iter) whose weights fit."""
    ckpt = read_checkpoint(path)
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    if not (isinstance(meta, dict) and ('epoch' in meta or 'iter' in meta)
            and 'optimizer' in ckpt):
        raise CheckpointError(
            f'{path}: not a training checkpoint (no epoch/iter and optimizer '
            'state: weights only?), so it cannot be resumed; to start a new '
            f'training from these weights use --cfg-options load_from={path}')
    check_weights_fit(model, path, ckpt)


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


def is_main_process_by_env() -> bool:
    """Rank 0 of a launch (by the launcher's environment, before
    ``torch.distributed`` is initialised)."""
    return os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) == '0'
