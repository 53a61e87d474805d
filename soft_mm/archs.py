# Copyright (c) soft_mm contributors. All rights reserved.
"""The SOFT architectures, as data (no imports): the backbone's
``SOFT.arch_zoo`` / ``SOFT.arch_defaults``, read also where OpenMMLab is
not installed (the op benchmark on a bare GPU machine)."""

#: The five archs of the paper: 4 stages of embedding dims, heads, blocks.
ARCH_ZOO = {
    'tiny': dict(
        embed_dims=[64, 128, 320, 512],
        num_heads=[2, 4, 10, 16],
        depths=[1, 2, 3, 2]),
    'small': dict(
        embed_dims=[64, 128, 320, 512],
        num_heads=[2, 4, 10, 16],
        depths=[1, 3, 7, 4]),
    'medium': dict(
        embed_dims=[64, 128, 288, 512],
        num_heads=[2, 4, 9, 16],
        depths=[1, 3, 29, 5]),
    'large': dict(
        embed_dims=[64, 128, 320, 512],
        num_heads=[2, 4, 10, 16],
        depths=[1, 3, 40, 5]),
    'huge': dict(
        embed_dims=[64, 128, 352, 512],
        num_heads=[2, 4, 11, 16],
        depths=[1, 5, 49, 5]),
}
#: Settings a custom arch may leave out: landmark sampling ratios and local
#: conv kernels of stages 1-3, MLP ratios of stage 4 and of stages 1-3, stem
#: width.
ARCH_DEFAULTS = dict(
    sr_ratios=[8, 4, 2],
    local_kernels=[9, 5, 3],
    mlp_ratio=4,
    soft_mlp_ratio=4,
    stem_channels=32)
