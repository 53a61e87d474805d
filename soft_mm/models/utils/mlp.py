# Copyright (c) soft_mm contributors. All rights reserved.
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from torch import Tensor


class Mlp(nn.Module):
    """Two-layer feed-forward network ``fc2(act(fc1(x)))``.

    Args:
        embed_dims (int): Input and output channels.
        hidden_dims (int): Hidden channels.
        act_cfg (dict): Activation. Defaults to exact GELU.
    """

    def __init__(self,
                 embed_dims: int,
                 hidden_dims: int,
                 act_cfg: dict = dict(type='GELU')):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))
