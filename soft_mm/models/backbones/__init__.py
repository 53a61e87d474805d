# Copyright (c) soft_mm contributors. All rights reserved.
from .cls_block import ClsAttention, ClsBlock
from .patch_embed import ConvPatchEmbed
from .soft import SOFT
from .soft_block import SoftAttention, SoftBlock

__all__ = [
    'SOFT', 'SoftAttention', 'SoftBlock', 'ClsAttention', 'ClsBlock',
    'ConvPatchEmbed'
]
