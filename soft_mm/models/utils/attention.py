# Copyright (c) soft_mm contributors. All rights reserved.
"""The attention layers of SOFT: softmax-free SOFT attention (stages 1-3)
and the softmax attention of the class-token stage (stage 4)."""
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer
from torch import Tensor

from soft_mm.ops import (depthwise_conv2d_nhwc, soft_attention,
                         soft_attention_rows)
from .checks import (check_act_cfg, check_attn_impl, check_bool, check_heads,
                     check_int, check_landmark_grid)


class SoftAttention(nn.Module):
    """Softmax-free attention with Gaussian kernels and Newton inverse.

    ``K = Q``; queries are scaled by ``d ** -0.25``; landmarks come from a
    ``sr x sr`` strided conv over each head's query map (one conv shared by
    all heads) followed by LayerNorm and an activation. The output is
    ``(A B^-1)(A^T V)`` plus a depthwise "local" conv on ``V`` (one
    ``k x k`` filter per head shared across its channels).

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Heads ``h``; ``C / h`` is the head dim ``d``.
        sr_ratio (int): Landmark sampling ratio.
        local_kernel (int): Kernel of the local depthwise conv on ``V``.
        attn_norm (bool): SOFT-Norm (degree-normalised inverse).
            Defaults to False.
        newton_iters (int): Newton iterations. Defaults to 20.
        attn_impl (str): Implementation of the attention core, see
            :func:`soft_mm.ops.soft_attention`. Defaults to ``'auto'``.
        landmark_grid (int | tuple, optional): Bound the landmark count to
            this grid (``m <= gh * gw``): larger query maps are first
            average-pooled to ``(gh * sr, gw * sr)``. ``None`` keeps the
            official fixed ratio (``m`` grows with the image).
            Defaults to None.
        landmark_act_cfg (dict): Activation after the landmark LayerNorm.
            Defaults to exact GELU.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 sr_ratio: int,
                 local_kernel: int,
                 attn_norm: bool = False,
                 newton_iters: int = 20,
                 attn_impl: str = 'auto',
                 landmark_grid: Optional[Union[int, Tuple[int, int]]] = None,
                 landmark_act_cfg: dict = dict(type='GELU')):
        super().__init__()
        owner = 'SoftAttention'
        check_heads(owner, embed_dims, num_heads)
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.sr_ratio = check_int(owner, 'sr_ratio', sr_ratio)
        local_kernel = check_int(owner, 'local_kernel', local_kernel, odd=True)
        self.attn_norm = check_bool(owner, 'attn_norm', attn_norm)
        self.newton_iters = check_int(owner, 'newton_iters', newton_iters, 0)
        self.attn_impl = check_attn_impl(owner, attn_impl)
        self.landmark_grid = check_landmark_grid(owner, landmark_grid)
        check_act_cfg(owner, 'landmark_act_cfg', landmark_act_cfg)

        self.q = nn.Linear(embed_dims, embed_dims)
        self.v = nn.Linear(embed_dims, embed_dims)
        self.landmark_conv = nn.Conv2d(
            self.head_dims,
            self.head_dims,
            kernel_size=sr_ratio,
            stride=sr_ratio,
            bias=False)
        self.landmark_norm = nn.LayerNorm(self.head_dims)
        self.landmark_act = build_activation_layer(landmark_act_cfg)
        self.local_conv = nn.Conv2d(
            num_heads,
            num_heads,
            kernel_size=local_kernel,
            padding=local_kernel // 2,
            groups=num_heads,
            bias=False)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def landmark_count(self, hw_shape: Sequence[int]) -> int:
        """Landmarks per head ``m`` that a ``(H, W)`` token map gives."""
        sr = self.sr_ratio
        H, W = hw_shape
        if self.landmark_grid is not None:
            H = min(H, self.landmark_grid[0] * sr)
            W = min(W, self.landmark_grid[1] * sr)
        return (max(H, sr) // sr) * (max(W, sr) // sr)

    def newton_macs(self, hw_shape: Sequence[int]) -> Tuple[int, int]:
        """Multiply-accumulates of the Newton steps (``h * 2 * iters *
        m^3``) and of the rest of this layer on a ``(H, W)`` map (the
        ``q``, ``v`` and output projections ``3 n C^2``, and the n-sized
        kernel products ``~3 n m C``)."""
        m = self.landmark_count(hw_shape)
        n = hw_shape[0] * hw_shape[1]
        channels = self.num_heads * self.head_dims
        return (self.num_heads * 2 * self.newton_iters * m**3,
                3 * n * channels * (channels + m))

    def sample_landmarks(self, q: Tensor, hw_shape: Sequence[int]) -> Tensor:
        """Landmarks ``(B, h, m, d)`` from scaled queries ``(B, h, n, d)``."""
        B, h, _, d = q.shape
        H, W = hw_shape
        q_map = q.reshape(B * h, H, W, d).permute(0, 3, 1, 2)
        sr = self.sr_ratio
        if self.landmark_grid is not None:
            max_h, max_w = (g * sr for g in self.landmark_grid)
            if H > max_h or W > max_w:
                q_map = F.adaptive_avg_pool2d(q_map,
                                              (min(H, max_h), min(W, max_w)))
        # A side shorter than sr would leave no landmark: pad it to one cell.
        pad_h, pad_w = max(sr - q_map.shape[2], 0), max(sr - q_map.shape[3], 0)
        if pad_h or pad_w:
            q_map = F.pad(q_map, (0, pad_w, 0, pad_h))
        lm = self.landmark_conv(q_map).flatten(2).transpose(1, 2)
        lm = self.landmark_act(self.landmark_norm(lm))
        return lm.reshape(B, h, lm.shape[1], d)

    def local_enhance(self, v_tokens: Tensor,
                      hw_shape: Sequence[int]) -> Tensor:
        """The local depthwise conv on values ``(B, N, C)``; same shape out.

        Equal to ``local_conv`` over each head's ``h``-channel map with
        ``d`` folded into the batch, but computed as a depthwise conv over
        all ``C = h * d`` channels (each head's filter repeated ``d``
        times) on a channels-last view of the tokens: no permute copy in,
        none out, and a much faster conv and conv backward on CPU.
        """
        B, N, C = v_tokens.shape
        H, W = hw_shape
        weight = self.local_conv.weight.repeat_interleave(self.head_dims, 0)
        local = depthwise_conv2d_nhwc(v_tokens.view(B, H, W, C), weight)
        # channels-last out: this is a view (B, N, C).
        return local.reshape(B, N, C)

    def queries(self, x: Tensor) -> Tensor:
        """Scaled queries ``(B, h, N, d)`` of tokens ``x`` (B, N, C)."""
        B, N, _ = x.shape
        h, d = self.num_heads, self.head_dims
        # The d**-0.25 query scale is folded into the (C x C) weights rather
        # than applied to the (B, N, C) activations. q is copied once into
        # the (B, h, N, d) layout the attention core reads (it would
        # otherwise copy it in its forward and again in its backward).
        scale = d**-0.25
        q = F.linear(x, self.q.weight * scale, self.q.bias * scale)
        return q.view(B, N, h, d).transpose(1, 2).contiguous()

    def attention_rows(self, x: Tensor, hw_shape: Sequence[int],
                       rows: Sequence[int]) -> Tensor:
        """The weights that query tokens ``rows`` give every token: rows of
        ``A B^-1 A^T`` (the local conv on ``V`` is not part of them).

        Args:
            x (Tensor): The layer's input tokens ``(B, H * W, C)``.
            hw_shape (Sequence[int]): ``(H, W)``.
            rows (Sequence[int]): Query token indices (row-major).

        Returns:
            Tensor: ``(B, h, len(rows), H * W)``.
        """
        q = self.queries(x)
        return soft_attention_rows(q, self.sample_landmarks(q, hw_shape),
                                   rows, self.newton_iters, self.attn_norm)

    def forward(self, x: Tensor, hw_shape: Sequence[int]) -> Tensor:
        """Attend over tokens ``x`` (B, H * W, C); returns the same shape."""
        B, N, C = x.shape
        h, d = self.num_heads, self.head_dims
        q = self.queries(x)
        # v goes to the core as a (B, h, N, d) view of the (B, N, C) values,
        # not a copy: the local conv keeps the values for its backward
        # anyway, so the core keeps this view rather than a second copy of
        # them (the core copies into its layout for the duration of its
        # forward and backward only).
        v_tokens = self.v(x)
        v = v_tokens.view(B, N, h, d).transpose(1, 2)
        landmarks = self.sample_landmarks(q, hw_shape)
        out = soft_attention(
            q,
            landmarks,
            v,
            newton_iters=self.newton_iters,
            norm=self.attn_norm,
            impl=self.attn_impl)
        # local (B, N, h, d) first: the sum takes its layout, so merging the
        # heads back into (B, N, C) is a view.
        local = self.local_enhance(v_tokens, hw_shape).view(B, N, h, d)
        out = (local + out.transpose(1, 2)).reshape(B, N, C)
        return self.proj(out)


class ClsAttention(nn.Module):
    """Multi-head softmax attention with a separate ``q`` and fused ``kv``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
    """

    def __init__(self, embed_dims: int, num_heads: int):
        super().__init__()
        check_heads('ClsAttention', embed_dims, num_heads)
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
