# Copyright (c) soft_mm contributors. All rights reserved.
from .invalid_loss_hook import CheckInvalidLossHook
from .rng_state_hook import RNGStateHook

__all__ = ['CheckInvalidLossHook', 'RNGStateHook']
