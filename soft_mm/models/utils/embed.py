# Copyright (c) soft_mm contributors. All rights reserved.
"""Overlapping convolutional patch embeddings of SOFT (stem and
downsamplers)."""
from collections import OrderedDict
from typing import Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor


class ConvPatchEmbed(nn.Module):
    """A stack of 3x3 ``Conv(bias) -> BN -> ReLU`` units that embeds patches.

    SOFT's stage-1 stem is three units with strides 2, 1, 2 (3 -> 32 -> 32 ->
    C1, overall stride 4); stages 2-4 use a single stride-2 unit. Padding 1
    everywhere, so any input size works and each stride-2 unit maps a side
    ``s`` to ``ceil(s / 2)``.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels.
        mid_channels (Sequence[int]): Output channels of the units before
            the last. Defaults to ``()`` (a single unit).
        strides (Sequence[int]): Stride of each unit. Defaults to ``(2, )``.
        norm_cfg (dict): Normalisation layer. Defaults to BN.
        bias (bool): Whether the convs have a bias. The official model keeps
            it although BN follows; the MindSpore port has none. Defaults to
            True.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 mid_channels=(),
                 strides=(2, ),
                 norm_cfg: dict = dict(type='BN'),
                 bias: bool = True):
        super().__init__()
        widths = [in_channels, *mid_channels, embed_dims]
        if len(strides) != len(widths) - 1:
            raise ValueError('ConvPatchEmbed: need one stride per unit, got '
                             f'{len(strides)} strides for {len(widths) - 1} '
                             'units')
        self.projection = nn.Sequential(*[
            nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(c_in, c_out, 3, s, padding=1, bias=bias),
                    bn=build_norm_layer(norm_cfg, c_out)[1],
                    act=nn.ReLU(inplace=True)))
            for c_in, c_out, s in zip(widths[:-1], widths[1:], strides)
        ])

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Embed ``x`` (B, C, H, W).

        Returns:
            tuple: Tokens ``(B, H' * W', embed_dims)`` and ``(H', W')``.
        """
        # Channels-last throughout: oneDNN's convolutions and their
        # backward are much faster on CPU in NHWC (the stem's forward and
        # backward about 1.6x), the stage 2-4 inputs already are (B, N, C)
        # tokens viewed as a channels-last map (this is then a no-op), and
        # the tokens below are a view of the output, not a copy.
        x = self.projection(x.contiguous(memory_format=torch.channels_last))
        hw_shape = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2).contiguous(), hw_shape
