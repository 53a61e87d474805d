# Copyright (c) soft_mm contributors. All rights reserved.
"""Reusable layers of SOFT: attention, patch embedding, MLP."""
from .attention import ClsAttention, SoftAttention
from .embed import ConvPatchEmbed
from .mlp import Mlp

__all__ = ['SoftAttention', 'ClsAttention', 'ConvPatchEmbed', 'Mlp']
