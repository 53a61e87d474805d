# Copyright (c) soft_mm contributors. All rights reserved.
"""Stage 4 of SOFT: a pre-norm softmax-attention block over [cls; tokens]."""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor

from .mlp import Mlp


class ClsAttention(nn.Module):
    """Multi-head softmax attention with a separate ``q`` and fused ``kv``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
    """

    def __init__(self, embed_dims: int, num_heads: int):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'ClsAttention: embed_dims {embed_dims} is not '
                             f'divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.q = nn.Linear(embed_dims, embed_dims)
        self.kv = nn.Linear(embed_dims, embed_dims * 2)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        h = self.num_heads
        q = self.q(x).reshape(B, N, h, C // h).transpose(1, 2)
        k, v = self.kv(x).reshape(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
        # Default scale is head_dim ** -0.5, as the official model.
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class ClsBlock(nn.Module):
    """Pre-norm block ``x + DropPath(Attn(LN(x)))``, ``x + DropPath(MLP(LN(x)))``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        drop_path_rate (float): DropPath rate of this block. Defaults to 0.
        act_cfg (dict): MLP activation. Defaults to exact GELU.
        norm_eps (float): LayerNorm eps. Defaults to 1e-6.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = ClsAttention(embed_dims, num_heads)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
