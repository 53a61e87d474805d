# Copyright (c) soft_mm contributors. All rights reserved.
"""Stop training at the first non-finite loss."""
import math

import torch
from mmengine.device import get_device
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class StopOnInvalidLossHook(Hook):
    """Raise as soon as the training loss is NaN or infinite.

    Without it a diverged run keeps stepping on NaN gradients, and every
    later checkpoint is garbage. The check happens after each ``interval``
    iterations; in distributed runs the verdict is all-reduced so every rank
    stops at the same step with the same message (otherwise the healthy
    ranks would wait in the next collective until a timeout).

    Not called ``CheckInvalidLossHook``: mmdet registers a hook of that name,
    and an mmdet-scoped config would silently build mmdet's.

    Args:
        interval (int): Check every ``interval`` training iterations.
            Defaults to 1.
    """

    # Before the logger and checkpoint hooks, so nothing is saved after it.
    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        if not outputs or 'loss' not in outputs:
            return
        loss = outputs['loss']
        if isinstance(loss, torch.Tensor):
            bad = (~torch.isfinite(loss.detach())).any().float().reshape(1)
        else:
            bad = torch.tensor([0.0 if math.isfinite(loss) else 1.0],
                               device=get_device())
        if get_world_size() > 1:
            all_reduce(bad)  # sum: > 0 where any rank saw a bad loss
        if bad.item() > 0:
            value = loss.item() if isinstance(loss, torch.Tensor) and \
                loss.numel() == 1 else loss
            raise FloatingPointError(
                f'non-finite training loss ({value} on this rank; checked '
                f'across {get_world_size()} process(es)) at iteration '
                f'{runner.iter + 1}, epoch {runner.epoch + 1}, batch '
                f'{batch_idx + 1}: training stopped. Lower the learning rate, '
                'enable gradient clipping or resume from the last checkpoint.')
