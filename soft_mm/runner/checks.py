# Copyright (c) soft_mm contributors. All rights reserved.
"""Checks the train and test tools make before mmengine's Runner touches
weights, where mmengine would go on with a warning:

- a test checkpoint must fit the model exactly (mmengine loads what fits);
- a resume checkpoint must be a training checkpoint whose weights fit
  (mmengine warns and trains the random tensors on).
"""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner.checkpoint import find_latest_checkpoint

from soft_mm.checkpoint import (CheckpointError, fitting_state_dict,
                                read_checkpoint)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The classifier inside DDP / TTA wrappers."""
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        model = model.module
    return model


def check_weights_fit(model: nn.Module, ckpt, path: str) -> None:
    """Raise :class:`~soft_mm.checkpoint.CheckpointError` unless the weights
    in ``ckpt`` (read from ``path``) fit ``model`` key for key, shape for
    shape.

    Args:
        model (nn.Module): The (possibly wrapped) model.
        ckpt: The checkpoint, as :func:`~soft_mm.checkpoint.read_checkpoint`
            returned it.
        path (str): Where it was read from, for messages.
    """
    fitting_state_dict(unwrap_model(model), ckpt, path)


def resolve_resume(work_dir: str, resume: Optional[str]) -> Optional[str]:
    """The checkpoint a ``--resume`` (``'auto'`` or a path) resumes from,
    or None (auto-resume with no checkpoint yet: a fresh start)."""
    if resume == 'auto':
        return find_latest_checkpoint(work_dir)
    return resume


def check_resumable(model: nn.Module,
                    path: str,
                    world_size: Optional[int] = None,
                    batch_size: Optional[int] = None) -> None:
    """Raise :class:`~soft_mm.checkpoint.CheckpointError` unless ``path`` is
    a training checkpoint (weights, optimizer state, epoch/iter) whose
    weights fit, and, if it was saved in the middle of an epoch
    (``PreemptionHook``), this run has the processes and batch size that
    reproduce the rest of that epoch.

    Args:
        model (nn.Module): The (possibly wrapped) model.
        path (str): The checkpoint.
        world_size (int, optional): Processes of this run.
        batch_size (int, optional): Images per process and iteration.
    """
    ckpt = read_checkpoint(path)
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    if not (isinstance(meta, dict) and ('epoch' in meta or 'iter' in meta)
            and 'optimizer' in ckpt):
        raise CheckpointError(
            f'{path}: not a training checkpoint (no epoch/iter and optimizer '
            'state: weights only?), so it cannot be resumed; to start a new '
            f'training from these weights use --cfg-options load_from={path}')
    check_weights_fit(model, ckpt, path)
    check_same_layout(meta, path, world_size, batch_size)


def check_same_layout(meta: dict, path: str, world_size: Optional[int],
                      batch_size: Optional[int]) -> None:
    """A mid-epoch checkpoint resumes exactly only with the processes and
    batch size that saved it: the rest of the epoch is the rest of the
    order those made. Refuse anything else, saying what to do."""
    stop = meta.get('preemption') or {}
    if not stop.get('batch_in_epoch'):
        return  # an epoch boundary: any layout may continue from it
    saved = (stop.get('world_size'), stop.get('batch_size'))
    if (world_size, batch_size) == saved or None in (world_size, batch_size):
        return
    raise CheckpointError(
        f'{path}: saved in the middle of epoch {meta["epoch"] + 1} '
        f'({stop["batch_in_epoch"]} of {stop.get("batches_per_epoch")} '
        f'batches done) by {saved[0]} process(es) x {saved[1]} images, but '
        f'this run has {world_size} x {batch_size}: the rest of that epoch '
        'cannot be reproduced. Resume with the same number of processes '
        'and batch size, or from the last epoch checkpoint (--resume '
        'WORK_DIR/epoch_N.pth)')
