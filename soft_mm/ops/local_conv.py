# Copyright (c) soft_mm contributors. All rights reserved.
"""The local convolution of SOFT attention: a 'same', stride-1 depthwise
convolution over channels-last token maps.

The forward pass is PyTorch's own convolution. On CPU its weight gradient
is the slowest part of mkldnn's depthwise backward for the large kernels
SOFT uses (9 x 9 at stage 1: about 10 ms of a 224 x 224, batch-8 training
step); ``soft_mm._ext`` has a kernel for it (``depthwise_conv2d_weight_grad``,
2-4x faster), used here through a small autograd function. Everything else
(other devices, autocast, no gradient, no extension) is plain
``F.conv2d`` with PyTorch's autograd; both give the same numbers up to
summation order.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from . import ext
from .first_order import first_order_only


def _conv(x: Tensor, weight: Tensor) -> Tensor:
    channels, pad = x.shape[3], weight.shape[-1] // 2
    out = F.conv2d(x.permute(0, 3, 1, 2), weight, None, 1, pad, 1, channels)
    return out.permute(0, 2, 3, 1)


class _DepthwiseNHWC(torch.autograd.Function):
    """``_conv`` with the extension's CPU weight gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return _conv(x, weight)

    @staticmethod
    @first_order_only('depthwise_conv2d_nhwc (the CPU weight-gradient kernel)')
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        channels, k = x.shape[3], weight.shape[-1]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad.permute(0, 3, 1, 2), x.permute(0, 3, 1, 2), weight,
                None, [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0],
                channels, [True, False, False])[0].permute(0, 2, 3, 1)
        if ctx.needs_input_grad[1]:
            grad_w = torch.ops.soft_mm.depthwise_conv2d_weight_grad(
                x, grad, k).to(weight.dtype).view(weight.shape)
        return grad_x, grad_w


def _ext_backward_applies(x: Tensor, weight: Tensor) -> bool:
    return (ext.ext_available() and x.device.type == 'cpu'
            and x.dtype in (torch.float32, torch.float64)
            and weight.dtype == x.dtype and torch.is_grad_enabled()
            and (x.requires_grad or weight.requires_grad)
            and not torch.is_autocast_enabled('cpu'))


def depthwise_conv2d_nhwc(x: Tensor, weight: Tensor) -> Tensor:
    """Depthwise convolution, stride 1, zero padding ``k // 2``, of a
    channels-last map.

    Args:
        x (Tensor): ``(B, H, W, C)``, e.g. ``(B, N, C)`` tokens viewed as a
            map (no copy is made).
        weight (Tensor): ``(C, 1, k, k)`` with ``k`` odd.

    Returns:
        Tensor: ``(B, H, W, C)``, a view of a channels-last output.
    """
    name = 'depthwise_conv2d_nhwc'
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f'{name}: x and weight must be Tensors, got '
                        f'{type(x).__name__} and {type(weight).__name__}')
    if x.dim() != 4:
        raise ValueError(f'{name}: x must be (B, H, W, C), got shape '
                         f'{tuple(x.shape)}')
    k = weight.shape[-1] if weight.dim() == 4 else 0
    if (weight.dim() != 4 or weight.shape[0] != x.shape[3]
            or weight.shape[1] != 1 or weight.shape[2] != k or k % 2 == 0):
        raise ValueError(f'{name}: weight must be (C, 1, k, k) with C = '
                         f'{x.shape[3]} and k odd, got shape '
                         f'{tuple(weight.shape)}')
    if _ext_backward_applies(x, weight):
        return _DepthwiseNHWC.apply(x, weight)
    return _conv(x, weight)
