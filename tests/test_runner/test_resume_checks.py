# Copyright (c) soft_mm contributors. All rights reserved.
"""The checks before the Runner touches weights: resume layouts."""
import pytest

from soft_mm.checkpoint import CheckpointError
from soft_mm.runner import check_same_layout

MID_EPOCH = dict(epoch=1, iter=3, preemption=dict(
    world_size=2, batch_size=32, batch_in_epoch=1, batches_per_epoch=2))


def test_a_mid_epoch_checkpoint_needs_its_layout():
    check_same_layout(MID_EPOCH, 'x.pth', 2, 32)
    check_same_layout(MID_EPOCH, 'x.pth', None, None)  # nothing to compare
    for world_size, batch_size in [(1, 32), (2, 16), (4, 32)]:
        with pytest.raises(CheckpointError,
                           match=r'x\.pth: saved in the middle of epoch 2 '
                           r'\(1 of 2 batches done\) by 2 process\(es\) x '
                           rf'32 images, but this run has {world_size} x '
                           rf'{batch_size}'):
            check_same_layout(MID_EPOCH, 'x.pth', world_size, batch_size)


def test_epoch_boundaries_resume_in_any_layout():
    boundary = dict(MID_EPOCH, preemption=dict(MID_EPOCH['preemption'],
                                               batch_in_epoch=0))
    check_same_layout(boundary, 'x.pth', 1, 64)
    check_same_layout(dict(epoch=2, iter=4), 'epoch_2.pth', 1, 64)
