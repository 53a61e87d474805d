# Copyright (c) soft_mm contributors. All rights reserved.
"""Checkpoint converters: official PyTorch and MindSpore files -> soft_mm.

The fake checkpoints are written here from the layouts in SOFT.md s. 6/6b
(random values, official names and shapes); the MindSpore protobuf is
encoded by hand on the wire, independent of the reader under test.
"""
import argparse
import math
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F

import soft_mm  # noqa: F401
from soft_mm.models.utils import (CheckpointError, convert_official_state_dict,
                                  load_mindspore_checkpoint,
                                  load_official_checkpoint,
                                  read_mindspore_checkpoint)
from soft_mm.ops import soft_attention_reference
from tool_utils import ROOT, load_script, run_main

SOFT2MM = load_script('tools/model_converters/soft2mmpretrain.py')
MS2MM = load_script('tools/model_converters/mindspore2mmpretrain.py')

# A small custom arch keeps the tests fast; head dim 16 everywhere.
SMALL = dict(embed_dims=[32, 48, 64, 64], num_heads=[2, 3, 4, 4],
             depths=[1, 2, 2, 1])
TINY = dict(embed_dims=[64, 128, 320, 512], num_heads=[2, 4, 10, 16],
            depths=[1, 2, 3, 2])
SR, KERNELS, STEM, POS = [8, 4, 2], [9, 5, 3], 32, [56, 28, 14, 7]


def _rand(*shape, gen):
    return torch.randn(*shape, generator=gen)


def official_state(arch, num_classes=10, seed=0, empty=False):
    """A state dict with the official names and shapes (SOFT.md s. 6)."""
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
    """One official stages-1-3 block (SOFT.md s. 2-3), from official names."""
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


def build_backbone(meta, state, **kwargs):
    from soft_mm.models.backbones import SOFT
    model = SOFT(arch=meta['arch'], attn_impl='reference', init_cfg=None,
                 drop_path_rate=0., conv_bias=meta['conv_bias'], **kwargs)
    model.load_state_dict({
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    })
    return model.eval()


def fingerprint(t):
    return (tuple(t.shape), round(float(t.double().sum()), 6),
            round(float(t.double().abs().max()), 6))


def test_official_round_trip_functional(tmp_path, capsys):
    src, dst = tmp_path / 'official.pth.tar', tmp_path / 'soft.pth'
    raw, ema = write_timm_checkpoint(src, SMALL)
    code, out, err = run_main(SOFT2MM, capsys, src, dst)
    assert code == 0, err
    assert 'custom soft arch' in out  # SMALL is not a zoo arch
    ckpt = torch.load(dst, weights_only=True)
    state, meta = ckpt['state_dict'], ckpt['meta']
    assert meta['source_entry'] == 'state_dict_ema'
    assert meta['arch']['depths'] == SMALL['depths']
    assert meta['arch']['num_heads'] == SMALL['num_heads']
    assert meta['num_classes'] == 10 and meta['conv_bias']

    # Every official tensor lands exactly once, nothing else is added.
    out_prints = [fingerprint(v) for k, v in state.items()
                  if not k.endswith('num_batches_tracked')]
    src_prints = [fingerprint(v) for k, v in ema.items()
                  if not k.endswith('num_batches_tracked')]
    assert sorted(out_prints) == sorted(src_prints)
    # The pairs a wrong table would confuse.
    pairs = {
        'block2.1.att.mha.W_q.weight': 'backbone.stages.1.1.attn.q.weight',
        'block2.1.att.mha.W_v.weight': 'backbone.stages.1.1.attn.v.weight',
        'block2.1.att.mha.ff.bias': 'backbone.stages.1.1.attn.proj.bias',
        'block3.0.att.norm1.weight': 'backbone.stages.2.0.norm1.weight',
        'block3.0.att.norm2.weight': 'backbone.stages.2.0.norm2.weight',
        'patch_embed1.proj.4.running_mean':
        'backbone.patch_embeds.0.projection.1.bn.running_mean',
        'patch_embed1.proj.7.running_var':
        'backbone.patch_embeds.0.projection.2.bn.running_var',
        'patch_embed3.proj.0.weight':
        'backbone.patch_embeds.2.projection.0.conv.weight',
        'block4.0.attn.kv.weight': 'backbone.stages.3.0.attn.kv.weight',
        'pos_embed4': 'backbone.pos_embeds.3',
        'head.weight': 'head.fc.weight',
    }
    for off, mine in pairs.items():
        assert torch.equal(state[mine], ema[off]), (off, mine)

    # Numerically: the converted model computes what the official one does.
    model = build_backbone(meta, state)
    torch.manual_seed(0)
    img = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        stem, _ = model.patch_embeds[0](img)
        ref = official_stem(ema, img)
        torch.testing.assert_close(stem, ref.flatten(2).transpose(1, 2))
        hw = (12, 16)
        x = torch.randn(1, hw[0] * hw[1], 48)
        torch.testing.assert_close(
            model.stages[1][1](x, hw),
            official_soft_block(ema, 'block2.1.', x, hw, 3, 4, 5))
        x = torch.randn(2, 9, 64)
        # Unit-variance random weights give large activations: compare
        # relatively (a misplaced tensor changes the output by O(1)).
        torch.testing.assert_close(
            model.stages[3][0](x), official_cls_block(ema, 'block4.0.', x, 4),
            rtol=1e-3, atol=1e-3)


def test_official_no_ema_bare_and_norm(tmp_path):
    src = tmp_path / 'official.pth.tar'
    raw, ema = write_timm_checkpoint(src, SMALL)
    ckpt = load_official_checkpoint(str(src), use_ema=False, attn_norm=True)
    assert ckpt['meta']['source_entry'] == 'state_dict'
    assert ckpt['meta']['attn_norm'] is True
    assert torch.equal(ckpt['state_dict']['backbone.stages.0.0.attn.q.weight'],
                       raw['block1.0.att.mha.W_q.weight'])
    # A bare state dict without num_batches_tracked (filled in, reported).
    bare = {k: v for k, v in ema.items() if 'num_batches' not in k}
    torch.save(bare, tmp_path / 'bare.pth')
    ckpt = load_official_checkpoint(str(tmp_path / 'bare.pth'))
    assert ckpt['meta']['source_entry'] == 'bare'
    assert len(ckpt['meta']['filled']) == 6


def test_official_tiny_and_code_small_arch():
    state, meta = convert_official_state_dict(
        official_state(TINY, num_classes=1000, empty=True))
    assert meta['arch_name'] == 'tiny'
    n_params = sum(v.numel() for k, v in state.items()
                   if 'running' not in k and 'num_batches' not in k)
    assert round(n_params / 1e6, 2) == 13.07  # SOFT.md s. 1
    # The official code's `small` has 20 blocks in stage 3: a custom arch.
    code_small = dict(TINY, depths=[1, 3, 20, 4])
    _, meta = convert_official_state_dict(
        official_state(code_small, num_classes=1000, empty=True))
    assert meta['arch_name'] is None
    assert meta['arch']['depths'] == [1, 3, 20, 4]
    from soft_mm.models.utils import config_hint
    assert 'depths [1, 3, 20, 4]' in config_hint(meta)


@pytest.mark.parametrize('case', ['unknown', 'missing', 'shape', 'resnet'])
def test_official_refuses_bad_keys(case):
    sd = official_state(SMALL, empty=True)
    if case == 'unknown':
        sd['block1.0.att.extra.weight'] = torch.empty(3)
        sd['dist_token'] = torch.empty(1, 1, 64)
        match = r'2 keys are not part of.*dist_token'
    elif case == 'missing':
        del sd['block2.1.att.mha.W_v.bias']
        match = r'1 missing keys: backbone.stages.1.1.attn.v.bias'
    elif case == 'shape':
        sd['block3.1.att.ff1.weight'] = torch.empty(64, 64)
        match = r'shape mismatches.*stages.2.1.ffn.fc1.weight \(64, 64\)'
    else:
        sd = {'conv1.weight': torch.empty(64, 3, 7, 7),
              'fc.weight': torch.empty(1000, 2048)}
        match = 'not part of an official SOFT model: conv1.weight'
    with pytest.raises(CheckpointError, match=match):
        convert_official_state_dict(sd, path='x.pth')


def test_official_cli_errors(tmp_path, capsys):
    bad = tmp_path / 'trunc.pth'
    write_timm_checkpoint(bad, SMALL)
    bad.write_bytes(bad.read_bytes()[:5000])
    for src, match in [(tmp_path / 'nope.pth', 'no such file'),
                       (bad, 'not a readable PyTorch checkpoint')]:
        code, out, err = run_main(SOFT2MM, capsys, src, tmp_path / 'o.pth')
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(src) in lines[0] and match in lines[0]
    assert not (tmp_path / 'o.pth').exists()


def test_official_refuses_pickled_code(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'hook': print}, path)
    with pytest.raises(CheckpointError, match='refused to unpickle'):
        load_official_checkpoint(str(path))


def test_scheme_loads_official_file_in_init_cfg(tmp_path):
    from mmpretrain.models import build_classifier
    src = tmp_path / 'official.pth.tar'
    _, ema = write_timm_checkpoint(src, SMALL)
    model = build_classifier(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='SOFT',
                arch=SMALL,
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=f'soft-official://{src}',
                    prefix='backbone.')),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    model.init_weights()
    assert torch.equal(model.backbone.stages[2][1].attn.v.weight,
                       ema['block3.1.att.mha.W_v.weight'])
    assert torch.equal(model.backbone.cls_token, ema['cls_token'])


# --------------------------------------------------------------------------
# MindSpore


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
    """MindSpore Checkpoint protobuf, encoded by hand (SOFT.md s. 6b)."""
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


def test_mindspore_tiny_layout_matches_spec():
    ms = mindspore_state(TINY, num_classes=1000)
    # SOFT.md s. 6b: SOFT-tiny has 225 tensors and 13.53 M values.
    assert len(ms) == 225
    assert math.isclose(sum(v.numel() for v in ms.values()) / 1e6, 13.53,
                        abs_tol=0.005)


def test_mindspore_round_trip(tmp_path, capsys):
    ms = mindspore_state(SMALL, dtype=torch.float16)
    ms['moments.block1.0.att.ff1.weight'] = torch.zeros(2, dtype=torch.float16)
    src, dst = tmp_path / 'soft.ckpt', tmp_path / 'soft.pth'
    src.write_bytes(encode_ms_checkpoint(ms))
    read = read_mindspore_checkpoint(str(src))
    assert list(read) == list(ms)
    assert all(torch.equal(read[k], ms[k]) for k in ms)

    code, out, err = run_main(MS2MM, capsys, src, dst)
    assert code == 0, err
    assert 'torch.float16' in out and 'skipped 51' in out
    ckpt = torch.load(dst, weights_only=True)
    state, meta = ckpt['state_dict'], ckpt['meta']
    assert meta['arch']['depths'] == SMALL['depths'] and not meta['conv_bias']
    assert all(v.dtype in (torch.float32, torch.long) for v in state.values())
    pairs = {
        'block2.1.att.mha.W_q.weight': 'backbone.stages.1.1.attn.q.weight',
        'block2.1.att.mha.W_v.bias': 'backbone.stages.1.1.attn.v.bias',
        'block1.0.att.mha.attn.Qnorm_act.0.gamma':
        'backbone.stages.0.0.attn.landmark_norm.weight',
        'block3.1.att.norm2.beta': 'backbone.stages.2.1.norm2.bias',
        'block4.0.layers.0.cell.0.gamma': 'backbone.stages.3.0.norm1.weight',
        'block4.0.layers.1.cell.0.beta': 'backbone.stages.3.0.norm2.bias',
        'block4.0.layers.1.cell.1.ff2.weight':
        'backbone.stages.3.0.mlp.fc2.weight',
        'patch_embed1.conv2.weight':
        'backbone.patch_embeds.0.projection.1.conv.weight',
        'patch_embed1.norm3.moving_variance':
        'backbone.patch_embeds.0.projection.2.bn.running_var',
        'patch_embed4.norm.moving_mean':
        'backbone.patch_embeds.3.projection.0.bn.running_mean',
        'patch_embed2.conv.weight':
        'backbone.patch_embeds.1.projection.0.conv.weight',
        'cls': 'backbone.cls_token',
        'norm.gamma': 'backbone.norm.weight',
    }
    for tag, name in pairs.items():
        # fp16 -> fp32 widening is exact.
        assert torch.equal(state[name], ms[tag].float()), (tag, name)
    # The dead layers went nowhere: every output tensor is a used source.
    used = {fingerprint(ms[t].float()) for t in ms
            if not t.startswith(('patch_embed1.conv.', 'patch_embed1.norm.',
                                 'moments'))
            and not any(f'patch_embed{s}.{k}{u}.' in t for s in (2, 3, 4)
                        for k in ('conv', 'norm') for u in (1, 2, 3))}
    outs = {fingerprint(v) for k, v in state.items()
            if 'num_batches' not in k}
    assert outs == used
    # Dead: patch_embed1.{conv, norm} (1 + 4), the stems of patch_embed2-4
    # (3 x (3 + 3 x 4)), and the optimizer moment.
    assert len(meta['skipped']) == 5 + 45 + 1
    assert 'moments.block1.0.att.ff1.weight' in meta['skipped']


def test_mindspore_config_loads_converted(tmp_path):
    from mmengine.config import Config
    from mmpretrain.models import build_classifier
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'soft', 'soft-tiny_mindspore-port_in1k.py'))
    bb = cfg.model.backbone
    assert bb.conv_bias is False and bb.cls_norm_eps == 1e-7
    assert bb.landmark_act_cfg['approximate'] == 'tanh'
    assert bb.cls_act_cfg['approximate'] == 'tanh'
    # The config's model takes a converted tiny file strictly.
    ms = mindspore_state(TINY, num_classes=1000)
    src = tmp_path / 'tiny.ckpt'
    src.write_bytes(encode_ms_checkpoint(ms))
    ckpt = load_mindspore_checkpoint(str(src))
    model = build_classifier(cfg.model)
    missing, unexpected = model.load_state_dict(ckpt['state_dict'])
    assert not missing and not unexpected


@pytest.mark.parametrize('case', ['truncated', 'garbage', 'unknown', 'bytes'])
def test_mindspore_bad_files(tmp_path, capsys, case):
    ms = mindspore_state(SMALL)
    path = tmp_path / f'{case}.ckpt'
    data = encode_ms_checkpoint(ms)
    if case == 'truncated':
        data, match = data[:len(data) // 2], 'corrupt or truncated'
    elif case == 'garbage':
        data, match = b'\xff' * 64, 'corrupt or truncated'
    elif case == 'unknown':
        ms['backbone.layer1.weight'] = torch.zeros(3)
        data, match = encode_ms_checkpoint(ms), r'backbone.layer1.weight'
    else:
        bad = {'cls': ms['cls']}
        data = encode_ms_checkpoint(bad)
        data = data.replace(b'Float32', b'Float64')
        match = "tensor 'cls' holds"
    path.write_bytes(data)
    code, out, err = run_main(MS2MM, capsys, path, tmp_path / 'o')
    assert code == 1
    line, = err.strip().splitlines()
    assert str(path) in line
    assert re.search(match, line), line
