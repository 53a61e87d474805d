# Copyright (c) soft_mm contributors. All rights reserved.
from .preemption_hook import EXIT_PREEMPTED, PreemptionHook
from .rng_state_hook import RNGStateHook
from .stop_on_invalid_loss_hook import StopOnInvalidLossHook

__all__ = [
    'StopOnInvalidLossHook', 'RNGStateHook', 'PreemptionHook',
    'EXIT_PREEMPTED'
]
