# Copyright (c) soft_mm contributors. All rights reserved.
from .stop_on_invalid_loss_hook import StopOnInvalidLossHook
from .rng_state_hook import RNGStateHook

__all__ = ['StopOnInvalidLossHook', 'RNGStateHook']
