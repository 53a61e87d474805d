# Copyright (c) soft_mm contributors. All rights reserved.
from .rng_state_hook import RNGStateHook
from .stop_on_invalid_loss_hook import StopOnInvalidLossHook

__all__ = ['StopOnInvalidLossHook', 'RNGStateHook']
