# Copyright (c) soft_mm contributors. All rights reserved.
"""Fake original SOFT checkpoints for the converter tests.

Written from the published layouts (``docs/design.md``, "Checkpoint
layouts"), independent of the converters under test: random values under
the official names and shapes, a functional re-implementation of the
official blocks to compare outputs with, and the MindSpore protobuf encoded
by hand on the wire.
"""
import argparse

import torch
import torch.nn.functional as F

from soft_mm.ops import soft_attention_reference

# A small custom arch keeps the tests fast; head dim 16 everywhere.
SMALL = dict(embed_dims=[32, 48, 64, 64], num_heads=[2, 3, 4, 4],
             depths=[1, 2, 2, 1])
TINY = dict(embed_dims=[64, 128, 320, 512], num_heads=[2, 4, 10, 16],
            depths=[1, 2, 3, 2])
SR, KERNELS, STEM, POS = [8, 4, 2], [9, 5, 3], 32, [56, 28, 14, 7]


def _rand(*shape, gen):
    return torch.randn(*shape, generator=gen)


def official_state(arch, num_classes=10, seed=0, empty=False):
    """A state dict with the official names and shapes (design.md)."""
    gen = torch.Generator().manual_seed(seed)
    t = (lambda *s: torch.empty(*s)) if empty else (
        lambda *s: _rand(*s, gen=gen))
    dims, heads, depths = (arch[k] for k in ('embed_dims', 'num_heads',
                                             'depths'))
    sd = {}

    def bn(prefix, c):
        sd[prefix + 'weight'], sd[prefix + 'bias'] = t(c), t(c)
        sd[prefix + 'running_mean'] = t(c)
        sd[prefix + 'running_var'] = t(c).abs() + 0.5
        sd[prefix + 'num_batches_tracked'] = torch.tensor(7)

    widths = [3, STEM, STEM, dims[0]]
    for u in range(3):
        sd[f'patch_embed1.proj.{3 * u}.weight'] = t(widths[u + 1], widths[u],
                                                    3, 3)
        sd[f'patch_embed1.proj.{3 * u}.bias'] = t(widths[u + 1])
        bn(f'patch_embed1.proj.{3 * u + 1}.', widths[u + 1])
    for s in (2, 3, 4):
        sd[f'patch_embed{s}.proj.0.weight'] = t(dims[s - 1], dims[s - 2], 3, 3)
        sd[f'patch_embed{s}.proj.0.bias'] = t(dims[s - 1])
        bn(f'patch_embed{s}.proj.1.', dims[s - 1])
    for s in range(4):
        sd[f'pos_embed{s + 1}'] = t(1, POS[s]**2 + (s == 3), dims[s])
    sd['cls_token'] = t(1, 1, dims[3])
    for s in range(3):
        c, h = dims[s], heads[s]
        d = c // h
        for i in range(depths[s]):
            p = f'block{s + 1}.{i}.att.'
            for name, (o, n) in dict(
                    W_q=(c, c), W_v=(c, c), ff=(c, c)).items():
                sd[f'{p}mha.{name}.weight'], sd[f'{p}mha.{name}.bias'] = t(
                    o, n), t(o)
            sd[p + 'mha.attn.Qlandmark_op.weight'] = t(d, d, SR[s], SR[s])
            sd[p + 'mha.attn.Qnorm_act.0.weight'] = t(d)
            sd[p + 'mha.attn.Qnorm_act.0.bias'] = t(d)
            sd[p + 'mha.attn.conv.weight'] = t(h, 1, KERNELS[s], KERNELS[s])
            for n in ('norm1', 'norm2'):
                sd[f'{p}{n}.weight'], sd[f'{p}{n}.bias'] = t(c), t(c)
            sd[p + 'ff1.weight'], sd[p + 'ff1.bias'] = t(4 * c, c), t(4 * c)
            sd[p + 'ff2.weight'], sd[p + 'ff2.bias'] = t(c, 4 * c), t(c)
    c = dims[3]
    for i in range(depths[3]):
        p = f'block4.{i}.'
        shapes = {'norm1': (c, ), 'attn.q': (c, c), 'attn.kv': (2 * c, c),
                  'attn.proj': (c, c), 'norm2': (c, ), 'mlp.fc1': (4 * c, c),
                  'mlp.fc2': (c, 4 * c)}
        for name, shape in shapes.items():
            sd[f'{p}{name}.weight'] = t(*shape)
            sd[f'{p}{name}.bias'] = t(shape[0])
    sd['norm.weight'], sd['norm.bias'] = t(c), t(c)
    sd['head.weight'], sd['head.bias'] = t(num_classes, c), t(num_classes)
    return sd


def write_timm_checkpoint(path, arch, module_prefix=True):
    """A timm-style training checkpoint as the official train.py saves."""
    raw, ema = official_state(arch, seed=1), official_state(arch, seed=2)
    pre = 'module.' if module_prefix else ''
    ckpt = dict(
        epoch=299,
        arch='SOFT_tiny',
        state_dict={pre + k: v
                    for k, v in raw.items()},
        state_dict_ema=ema,
        optimizer=dict(state={}, param_groups=[dict(lr=1e-3, params=[0])]),
        args=argparse.Namespace(model='SOFT_tiny', lr=1e-3, epochs=300),
        version=2)
    torch.save(ckpt, path)
    return raw, ema


def official_soft_block(sd, p, x, hw, heads, sr, kernel):
    """One official stages-1-3 block (design.md), from official names."""
    B, N, C = x.shape
    H, W = hw
    d = C // heads

    def lin(name, inp):
        return F.linear(inp, sd[p + name + '.weight'], sd[p + name + '.bias'])

    q = lin('att.mha.W_q', x).reshape(B, N, heads, d).transpose(1, 2)
    q = q * d**-0.25
    v = lin('att.mha.W_v', x).reshape(B, N, heads, d).transpose(1, 2)
    qmap = q.reshape(B * heads, H, W, d).permute(0, 3, 1, 2)
    lm = F.conv2d(qmap, sd[p + 'att.mha.attn.Qlandmark_op.weight'],
                  stride=sr).flatten(2).transpose(1, 2)
    lm = F.gelu(
        F.layer_norm(lm, (d, ), sd[p + 'att.mha.attn.Qnorm_act.0.weight'],
                     sd[p + 'att.mha.attn.Qnorm_act.0.bias']))
    out = soft_attention_reference(q, lm.reshape(B, heads, -1, d), v)
    vmap = v.permute(0, 3, 1, 2).reshape(B * d, heads, H, W)
    local = F.conv2d(vmap, sd[p + 'att.mha.attn.conv.weight'],
                     padding=kernel // 2, groups=heads)
    out = out + local.reshape(B, d, heads, N).permute(0, 2, 3, 1)
    out = lin('att.mha.ff', out.transpose(1, 2).reshape(B, N, C))
    x = F.layer_norm(x + out, (C, ), sd[p + 'att.norm1.weight'],
                     sd[p + 'att.norm1.bias'])
    y = lin('att.ff2', F.gelu(lin('att.ff1', x), approximate='tanh'))
    return F.layer_norm(x + y, (C, ), sd[p + 'att.norm2.weight'],
                        sd[p + 'att.norm2.bias'])


def official_cls_block(sd, p, x, heads):
    """One official stage-4 block (pre-norm softmax attention)."""
    B, N, C = x.shape

    def lin(name, inp):
        return F.linear(inp, sd[p + name + '.weight'], sd[p + name + '.bias'])

    def ln(name, inp):
        return F.layer_norm(inp, (C, ), sd[p + name + '.weight'],
                            sd[p + name + '.bias'], eps=1e-6)

    y = ln('norm1', x)
    q = lin('attn.q', y).reshape(B, N, heads, -1).transpose(1, 2)
    k, v = lin('attn.kv', y).reshape(B, N, 2, heads, -1).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-1, -2) * q.shape[-1]**-0.5).softmax(-1)
    x = x + lin('attn.proj', (attn @ v).transpose(1, 2).reshape(B, N, C))
    return x + lin('mlp.fc2', F.gelu(lin('mlp.fc1', ln('norm2', x))))


def official_stem(sd, x):
    """``patch_embed1`` of the official model in eval mode."""
    for u in range(3):
        c, b = f'patch_embed1.proj.{3 * u}.', f'patch_embed1.proj.{3 * u + 1}.'
        x = F.conv2d(x, sd[c + 'weight'], sd[c + 'bias'], stride=(2, 1, 2)[u],
                     padding=1)
        x = F.relu(F.batch_norm(x, sd[b + 'running_mean'],
                                sd[b + 'running_var'], sd[b + 'weight'],
                                sd[b + 'bias']))
    return x


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, payload):  # length-delimited (wire type 2)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_ms_checkpoint(tensors):
    """MindSpore Checkpoint protobuf, encoded by hand (design.md)."""
    names = {torch.float16: 'Float16', torch.float32: 'Float32'}
    out = b''
    for tag, t in tensors.items():
        proto = b''.join(_varint(1 << 3) + _varint(d) for d in t.shape)
        proto += _field(2, names[t.dtype].encode())
        proto += _field(3, t.contiguous().numpy().tobytes())
        out += _field(1, _field(1, tag.encode()) + _field(2, proto))
    return out


def mindspore_state(arch, num_classes=10, dtype=torch.float32, seed=0):
    """Tensors of the seed's port: its names, dead layers, no conv bias."""
    gen = torch.Generator().manual_seed(seed)
    dims, depths = arch['embed_dims'], arch['depths']
    off = official_state(arch, num_classes, seed)
    ms = {}

    def bn(prefix, c):
        ms[prefix + 'gamma'], ms[prefix + 'beta'] = _rand(c, gen=gen), _rand(
            c, gen=gen)
        ms[prefix + 'moving_mean'] = _rand(c, gen=gen)
        ms[prefix + 'moving_variance'] = _rand(c, gen=gen).abs()

    for s in range(1, 5):
        c_in, c_out = (3 if s == 1 else dims[s - 2]), dims[s - 1]
        widths = [c_in, STEM, STEM, c_out]
        for u in range(1, 4):  # the stem (dead in stages 2-4)
            ms[f'patch_embed{s}.conv{u}.weight'] = _rand(
                widths[u], widths[u - 1], 3, 3, gen=gen)
            bn(f'patch_embed{s}.norm{u}.', widths[u])
        ms[f'patch_embed{s}.conv.weight'] = _rand(c_out, c_in, 3, 3, gen=gen)
        bn(f'patch_embed{s}.norm.', c_out)  # dead in stage 1
    for s in range(4):
        ms[f'pos_embed{s + 1}'] = off[f'pos_embed{s + 1}']
    ms['cls'] = off['cls_token']
    for key, t in off.items():
        if key.startswith(('block1', 'block2', 'block3')):
            ms[key.replace('Qnorm_act.0.weight', 'Qnorm_act.0.gamma').replace(
                'Qnorm_act.0.bias', 'Qnorm_act.0.beta').replace(
                    'norm1.weight', 'norm1.gamma').replace(
                        'norm1.bias', 'norm1.beta').replace(
                            'norm2.weight', 'norm2.gamma').replace(
                                'norm2.bias', 'norm2.beta')] = t
    for i in range(depths[3]):
        p, q = f'block4.{i}.', f'block4.{i}.layers.'
        for a, b in [('norm1', '0.cell.0'), ('norm2', '1.cell.0')]:
            ms[f'{q}{b}.gamma'] = off[f'{p}{a}.weight']
            ms[f'{q}{b}.beta'] = off[f'{p}{a}.bias']
        for a, b in [('attn.q', '0.cell.1.q'), ('attn.kv', '0.cell.1.kv'),
                     ('attn.proj', '0.cell.1.proj'),
                     ('mlp.fc1', '1.cell.1.ff1'), ('mlp.fc2', '1.cell.1.ff2')]:
            for w in ('weight', 'bias'):
                ms[f'{q}{b}.{w}'] = off[f'{p}{a}.{w}']
    ms['norm.gamma'], ms['norm.beta'] = off['norm.weight'], off['norm.bias']
    ms['head.weight'], ms['head.bias'] = off['head.weight'], off['head.bias']
    return {k: v.to(dtype) for k, v in ms.items()}
