# Copyright (c) soft_mm contributors. All rights reserved.
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer
from torch import Tensor


class _LinearGeluLinear(torch.autograd.Function):
    """``fc2(gelu(fc1(x)))`` that keeps the hidden pre-activation ``h`` for
    backward and recomputes ``gelu(h)`` there, instead of keeping both.

    Autograd would keep two hidden-size tensors per FFN (GELU's input and
    fc2's input); this keeps one. The hidden tensors are the largest a SOFT
    block keeps (4x the channels), so a training step needs about a fifth
    less memory at any resolution. Forward values are the same operations;
    backward recomputes the GELU with the same kernel, so gradients equal
    autograd's. A double backward (``create_graph=True``) recomputes the
    FFN from its saved input with autograd and differentiates that: the
    saved ``h`` has no graph back to ``x``, and gradients computed from it
    would drop the GELU's second-order terms.
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, approximate):
        h = F.linear(x, w1, b1)
        out = F.linear(F.gelu(h, approximate=approximate), w2, b2)
        ctx.save_for_backward(x, h, w1, b1, w2, b2)
        ctx.approximate = approximate
        ctx.has_bias = (b1 is not None, b2 is not None)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, h, w1, b1, w2, b2 = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            return _LinearGeluLinear._differentiable_backward(
                ctx, grad_out, x, w1, b1, w2, b2)
        need_x, need_w1, need_b1, need_w2, need_b2, _ = ctx.needs_input_grad
        hidden, channels = h.shape[-1], x.shape[-1]
        g_out = grad_out.reshape(-1, grad_out.shape[-1])
        grad_w1 = grad_b1 = grad_w2 = grad_b2 = grad_x = None
        if need_w2:
            a = F.gelu(h, approximate=ctx.approximate).reshape(-1, hidden)
            grad_w2 = g_out.t().mm(a)
            del a
        if need_b2 and ctx.has_bias[1]:
            grad_b2 = g_out.sum(0)
        if need_x or need_w1 or need_b1:
            grad_h = torch.ops.aten.gelu_backward(
                g_out.mm(w2), h.reshape(-1, hidden),
                approximate=ctx.approximate)
            if need_w1:
                grad_w1 = grad_h.t().mm(x.reshape(-1, channels))
            if need_b1 and ctx.has_bias[0]:
                grad_b1 = grad_h.sum(0)
            if need_x:
                grad_x = grad_h.mm(w1).view(x.shape)
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2, None

    @staticmethod
    def _differentiable_backward(ctx, grad_out, x, w1, b1, w2, b2):
        """The gradients as a graph of the inputs (for higher orders)."""
        inputs = (x, w1, b1, w2, b2)
        wanted = [t is not None and need
                  for t, need in zip(inputs, ctx.needs_input_grad)]
        hidden = F.gelu(F.linear(x, w1, b1), approximate=ctx.approximate)
        out = F.linear(hidden, w2, b2)
        grads = iter(torch.autograd.grad(
            out, [t for t, w in zip(inputs, wanted) if w], grad_out,
            create_graph=True))
        return tuple(next(grads) if w else None for w in wanted) + (None, )


class Mlp(nn.Module):
    """Two-layer feed-forward network ``fc2(act(fc1(x)))``.

    With a GELU activation, training keeps only the hidden pre-activation
    for backward and recomputes the GELU there (same values, one
    hidden-size tensor per FFN less memory); other activations, inference,
    autocast and tracing run the plain modules.

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

    def _recomputes_gelu(self, x: Tensor) -> bool:
        # Only where the autograd function is exactly the modules: fp32 /
        # fp64 eager training of plain Linear + GELU modules (autocast casts
        # inside the modules, tracers want the modules).
        return (type(self.act) is nn.GELU and torch.is_grad_enabled()
                and type(self.fc1) is nn.Linear
                and type(self.fc2) is nn.Linear
                and (x.requires_grad or self.fc1.weight.requires_grad)
                and x.dtype in (torch.float32, torch.float64)
                and x.device.type != 'meta'  # autocast knows no 'meta'
                and not torch.is_autocast_enabled(x.device.type)
                and not torch.compiler.is_compiling()
                and not torch.jit.is_scripting()
                and not torch.jit.is_tracing())

    def forward(self, x: Tensor) -> Tensor:
        if self._recomputes_gelu(x):
            return _LinearGeluLinear.apply(x, self.fc1.weight, self.fc1.bias,
                                           self.fc2.weight, self.fc2.bias,
                                           self.act.approximate)
        return self.fc2(self.act(self.fc1(x)))
