# Copyright (c) soft_mm contributors. All rights reserved.
"""Training-loop additions registered in mmpretrain's ``HOOKS`` registry."""
from .hooks import RNGStateHook, StopOnInvalidLossHook

__all__ = ['StopOnInvalidLossHook', 'RNGStateHook']
