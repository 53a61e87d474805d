# Copyright (c) soft_mm contributors. All rights reserved.
"""The backbone's faster layouts compute the same model as the plain one.

``reference_forward`` below is a frozen, self-contained copy of how the SOFT
backbone computed before its CPU layout work (per-head local conv with ``d``
folded into the batch, queries scaled after the projection, separate q / v
projections, NCHW feature maps between stages). It reads only the model's
parameters and its torch / mmcv leaf layers (Linear, Conv2d, BatchNorm,
LayerNorm, activations, dropout), never a soft_mm ``forward``. At float64,
with the same seed for the random layers, logits and every parameter
gradient must agree with it.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.utils import resize_pos_embed

from soft_mm.models import SOFT
from soft_mm.ops import soft_attention


def ref_soft_attention(attn, x, hw_shape):
    B, N, C = x.shape
    H, W = hw_shape
    h, d = attn.num_heads, attn.head_dims
    q = attn.q(x).reshape(B, N, h, d).transpose(1, 2) * d**-0.25
    v = attn.v(x).reshape(B, N, h, d).transpose(1, 2)
    # landmarks
    q_map = q.reshape(B * h, H, W, d).permute(0, 3, 1, 2)
    sr = attn.sr_ratio
    if attn.landmark_grid is not None:
        max_h, max_w = (g * sr for g in attn.landmark_grid)
        if H > max_h or W > max_w:
            q_map = F.adaptive_avg_pool2d(q_map,
                                          (min(H, max_h), min(W, max_w)))
    pad_h, pad_w = max(sr - q_map.shape[2], 0), max(sr - q_map.shape[3], 0)
    if pad_h or pad_w:
        q_map = F.pad(q_map, (0, pad_w, 0, pad_h))
    lm = attn.landmark_conv(q_map).flatten(2).transpose(1, 2)
    lm = attn.landmark_act(attn.landmark_norm(lm)).reshape(B, h, -1, d)
    out = soft_attention(q, lm, v, newton_iters=attn.newton_iters,
                         norm=attn.attn_norm, impl=attn.attn_impl)
    # local enhancement: heads as channels, d folded into the batch
    v_map = v.permute(0, 3, 1, 2).reshape(B * d, h, H, W)
    local = attn.local_conv(v_map).reshape(B, d, h, N).permute(0, 2, 3, 1)
    out = (out + local).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)


def ref_mlp(mlp, x):
    return mlp.fc2(mlp.act(mlp.fc1(x)))


def ref_soft_block(block, x, hw_shape):
    x = block.norm1(x + block.drop(ref_soft_attention(block.attn, x,
                                                      hw_shape)))
    return block.norm2(x + block.drop(ref_mlp(block.ffn, x)))


def ref_cls_attention(attn, x):
    B, N, C = x.shape
    h = attn.num_heads
    q = attn.q(x).reshape(B, N, h, C // h).transpose(1, 2)
    k, v = attn.kv(x).reshape(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)
    return attn.proj(out.transpose(1, 2).reshape(B, N, C))


def ref_cls_block(block, x):
    x = x + block.drop_path(ref_cls_attention(block.attn, block.norm1(x)))
    return x + block.drop_path(ref_mlp(block.mlp, block.norm2(x)))


def ref_patch_embed(embed, x):
    for unit in embed.projection:
        x = unit.act(unit.bn(unit.conv(x)))
    return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


def reference_forward(model, x):
    """The backbone forward as it was computed before the layout work."""
    outs = []
    B = x.shape[0]
    last_stage = model.num_stages - 1
    for i, (embed, blocks) in enumerate(zip(model.patch_embeds,
                                            model.stages)):
        x, hw_shape = ref_patch_embed(embed, x)
        last = i == last_stage
        if last:
            x = torch.cat([model.cls_token.expand(B, -1, -1), x], dim=1)
        x = x + resize_pos_embed(model.pos_embeds[i], model.pos_shapes[i],
                                 hw_shape, mode=model.interpolate_mode,
                                 num_extra_tokens=int(last))
        for block in blocks:
            x = ref_cls_block(block, x) if last else ref_soft_block(
                block, x, hw_shape)
        if last:
            x = model.norm(x)
            if i in model.out_indices:
                if model.out_type == 'cls_token':
                    outs.append(x[:, 0])
                elif model.out_type == 'avg_featmap':
                    outs.append(x[:, 1:].mean(dim=1))
                else:
                    outs.append(x[:, 1:].transpose(1, 2).reshape(
                        B, -1, *hw_shape))
        else:
            x = x.transpose(1, 2).reshape(B, -1, *hw_shape)
            if i in model.out_indices:
                outs.append(x)
    return tuple(outs)


def run_step(model, forward, x, seed):
    """Forward + backward of a fixed loss; returns (outputs, grads)."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    outs = forward(x)
    weights = [torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)
               for o in outs]
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return [o.detach() for o in outs], grads


CASES = [
    # SOFT-tiny itself, official settings, all stage outputs.
    dict(arch='tiny', out_indices=(0, 1, 2, 3), out_type='cls_token',
         drop_path_rate=0.1, size=(2, 64, 64)),
    # several heads in stage 1, SOFT-Norm, bounded landmarks, odd sizes
    # (landmark padding), drop-path mode, feature-map output.
    dict(arch=dict(embed_dims=[32, 48, 64, 64], num_heads=[2, 3, 4, 2],
                   depths=[1, 2, 1, 1], stem_channels=8,
                   sr_ratios=[4, 2, 1], local_kernels=[5, 3, 1]),
         out_indices=(0, 2, 3), out_type='featmap', attn_norm=True,
         landmark_grid=2, drop_path_rate=0.2, soft_drop_mode='drop_path',
         size=(3, 45, 38)),
    # one head per stage, avg_featmap, the pure-PyTorch core.
    dict(arch=dict(embed_dims=[16, 32, 32, 64], num_heads=[1, 1, 2, 4],
                   depths=[2, 1, 1, 1], stem_channels=8),
         out_type='avg_featmap', attn_impl='reference', drop_path_rate=0.3,
         size=(2, 40, 56)),
]


@pytest.mark.parametrize('case', CASES, ids=['tiny', 'custom', 'one-head'])
@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
def test_same_logits_and_gradients_as_reference(case, training):
    case = dict(case)
    B, H, W = case.pop('size')
    torch.manual_seed(0)
    model = SOFT(**case)
    model.init_weights()
    # BN statistics and non-trivial affine parameters, so that no term of
    # the comparison is trivially zero.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    model = model.double().train(training)
    ref_model = copy.deepcopy(model)
    x = torch.randn(B, 3, H, W, dtype=torch.float64)

    outs, grads = run_step(model, model, x, seed=1)
    ref_outs, ref_grads = run_step(ref_model,
                                   lambda t: reference_forward(ref_model, t),
                                   x, seed=1)
    assert len(outs) == len(ref_outs)
    for out, ref in zip(outs, ref_outs):
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    assert grads.keys() == ref_grads.keys()
    assert len(grads) == len(list(model.parameters()))
    # Some gradients are zero in exact arithmetic (a conv bias followed by
    # BatchNorm in training mode) and rounding noise in both runs: the
    # absolute tolerance scales with the largest gradient.
    atol = 1e-10 * max(g.abs().max().item() for g in ref_grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-9,
                                   atol=atol, msg=lambda m: f'{name}: {m}')
    if training:  # BN running statistics were updated alike
        for (name, buf), ref_buf in zip(model.named_buffers(),
                                        ref_model.buffers()):
            torch.testing.assert_close(buf, ref_buf, rtol=1e-10, atol=1e-12,
                                       msg=name)


def test_backbone_compiles_fullgraph():
    """The layouts (channels-last views, repeated local filters, folded
    query scale) trace in one graph, forward and backward."""
    torch.manual_seed(0)
    model = SOFT(arch=dict(embed_dims=[16, 32, 64, 64], num_heads=[1, 2, 2, 2],
                           depths=[1, 1, 1, 1], stem_channels=8),
                 out_indices=(0, 3), drop_path_rate=0.).train()
    x = torch.randn(2, 3, 48, 40)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    outs = compiled(x)
    for out, ref in zip(outs, eager):
        torch.testing.assert_close(out, ref)
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_classifier_compiles_with_inductor_on_cpu():
    """``torch.compile`` of a whole SOFT classifier with the default backend
    (Inductor, C++ code generated and built here) gives eager's logits and
    gradients in training mode: the benchmark's compiled column times this."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    eager = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='SOFT',
                           arch=dict(embed_dims=[16, 32, 64, 64],
                                     num_heads=[1, 2, 2, 2],
                                     depths=[1, 1, 1, 1], stem_channels=8),
                           drop_path_rate=0., out_type='cls_token'),
             head=dict(type='LinearClsHead', num_classes=10,
                       in_channels=64))).train()
    model = copy.deepcopy(eager)
    compiled = torch.compile(model)
    x = torch.randn(2, 3, 64, 48)

    def logits_and_grads(net, params):
        logits = net(x, mode='tensor')
        (logits * torch.arange(10.)).sum().backward()
        return logits.detach(), {
            n: p.grad for n, p in params.named_parameters()}

    ref, ref_grads = logits_and_grads(eager, eager)
    # the compiled wrapper's parameter names carry a prefix: read the module's
    out, out_grads = logits_and_grads(compiled, model)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert out_grads.keys() == ref_grads.keys()
    for name, grad in out_grads.items():
        assert grad is not None, name
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-3,
                                   atol=1e-4, msg=lambda m: f'{name}: {m}')
