# Copyright (c) soft_mm contributors. All rights reserved.
"""Training-loop additions registered in mmpretrain's ``HOOKS`` registry."""
from .hooks import CheckInvalidLossHook, RNGStateHook

__all__ = ['CheckInvalidLossHook', 'RNGStateHook']
