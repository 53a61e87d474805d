# Copyright (c) soft_mm contributors. All rights reserved.
"""Training-loop additions registered in mmpretrain's ``HOOKS`` registry."""
from .hooks import StopOnInvalidLossHook, RNGStateHook

__all__ = ['StopOnInvalidLossHook', 'RNGStateHook']
