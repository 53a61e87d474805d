# Copyright (c) soft_mm contributors. All rights reserved.
"""Training-loop additions registered in mmpretrain's ``HOOKS`` and
``LOOPS`` registries."""
from .hooks import (EXIT_PREEMPTED, PreemptionHook, RNGStateHook,
                    StopOnInvalidLossHook)
from .runners import ResumableEpochBasedTrainLoop

__all__ = [
    'StopOnInvalidLossHook', 'RNGStateHook', 'PreemptionHook',
    'EXIT_PREEMPTED', 'ResumableEpochBasedTrainLoop'
]
