# Copyright (c) soft_mm contributors. All rights reserved.
"""The converter tools: official PyTorch and MindSpore files -> soft_mm
(the formats themselves: ``tests/test_checkpoint``).

The fake checkpoints come from ``soft_fixtures`` (random values under the
official names and shapes; the MindSpore protobuf encoded by hand on the
wire, independent of the reader under test).
"""
import os.path as osp
import re

import pytest
import torch
from mmengine.runner import CheckpointLoader
from mmpretrain.models import build_classifier

import soft_mm  # noqa: F401
from soft_mm.checkpoint import (convert_official_state_dict,
                                load_mindspore_checkpoint, load_model_weights,
                                load_official_checkpoint,
                                read_mindspore_checkpoint)
from soft_mm.models import SOFT
from soft_fixtures import (SMALL, TINY, _field, _varint, encode_ms_checkpoint,
                           mindspore_state, official_cls_block,
                           official_soft_block, official_state, official_stem,
                           write_timm_checkpoint)
from tool_utils import ROOT, load_script, run_main

SOFT2MM = load_script('tools/model_converters/soft2mmpretrain.py')
MS2MM = load_script('tools/model_converters/mindspore2mmpretrain.py')


def build_backbone(meta, state, **kwargs):
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
        # In float64: the stem runs channels-last (another summation order
        # than the NCHW reference), and unit-variance weights amplify fp32
        # rounding through three conv + BN units to ~1e-4 relative.
        stem, _ = model.patch_embeds[0].double()(img.double())
        ref = official_stem({k: v.double() for k, v in ema.items()},
                            img.double())
        torch.testing.assert_close(stem, ref.flatten(2).transpose(1, 2),
                                   rtol=1e-10, atol=1e-10)
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


def test_official_config_hint_names_a_custom_arch():
    # The official code's `small` has 20 blocks in stage 3: a custom arch.
    _, meta = convert_official_state_dict(
        official_state(dict(TINY, depths=[1, 3, 20, 4]), num_classes=1000,
                       empty=True))
    assert 'depths [1, 3, 20, 4]' in SOFT2MM.config_hint(meta)


def test_official_cli_errors(tmp_path, capsys):
    bad = tmp_path / 'trunc.pth'
    write_timm_checkpoint(bad, SMALL)
    bad.write_bytes(bad.read_bytes()[:5000])
    for src, match in [(tmp_path / 'nope.pth', 'no such file'),
                       (bad, 'not a PyTorch checkpoint')]:
        code, out, err = run_main(SOFT2MM, capsys, src, tmp_path / 'o.pth')
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(src) in lines[0] and match in lines[0]
    assert not (tmp_path / 'o.pth').exists()


# --------------------------------------------------------------------------
# MindSpore


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


@pytest.mark.parametrize(
    'case', ['truncated', 'cut-before-head', 'garbage', 'unknown', 'bytes'])
def test_mindspore_bad_files(tmp_path, capsys, case):
    ms = mindspore_state(SMALL)
    path = tmp_path / f'{case}.ckpt'
    data = encode_ms_checkpoint(ms)
    if case == 'truncated':
        data, match = data[:len(data) // 2], 'corrupt or truncated'
    elif case == 'cut-before-head':
        # A whole message of its own: protobuf reads it without complaint.
        body = {k: v for k, v in ms.items() if not k.startswith('head.')}
        data = encode_ms_checkpoint(body)
        assert encode_ms_checkpoint(ms).startswith(data)
        match = r'no classifier head \(head.weight, head.bias missing\)'
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


@pytest.mark.parametrize('dims, match', [
    ((-1, 4), 'negative dims'),
    # 2**64 elements: a numpy int64 product wraps to 0 and "fits" 0 bytes.
    ((2**32, 2**32), r'holds 0 bytes but dims \[4294967296, 4294967296\]'),
])
def test_mindspore_bad_dims(tmp_path, capsys, dims, match):
    proto = b''.join(_varint(1 << 3) + _varint(d & (2**64 - 1)) for d in dims)
    proto += _field(2, b'Float32') + _field(3, b'')
    path = tmp_path / 'dims.ckpt'
    path.write_bytes(_field(1, _field(1, b'cls') + _field(2, proto)))
    code, _, err = run_main(MS2MM, capsys, path, tmp_path / 'o.pth')
    assert code == 1
    line, = err.strip().splitlines()
    assert str(path) in line and re.search(match, line), line


@pytest.mark.parametrize('tool', ['official', 'mindspore'])
def test_converters_refuse_to_overwrite_source_or_dir(tmp_path, capsys, tool):
    src = tmp_path / 'src.pth'
    if tool == 'official':
        write_timm_checkpoint(src, SMALL)
    else:
        src.write_bytes(encode_ms_checkpoint(mindspore_state(SMALL)))
    before = src.read_bytes()
    script = SOFT2MM if tool == 'official' else MS2MM
    for dst, match in [(src, 'is the source file'),
                       (tmp_path / '.' / 'src.pth', 'is the source file'),
                       (tmp_path, 'is a directory')]:
        code, _, err = run_main(script, capsys, src, dst)
        assert code == 1 and match in err and str(dst) in err, err
    assert src.read_bytes() == before


def test_safetensors_round_trip(tmp_path, capsys):
    src, dst = tmp_path / 'official.pth', tmp_path / 'soft.safetensors'
    write_timm_checkpoint(src, SMALL)
    code, _, err = run_main(SOFT2MM, capsys, src, dst)
    assert code == 0, err
    pth = load_official_checkpoint(str(src))['state_dict']
    model = build_classifier(dict(
        type='ImageClassifier',
        backbone=dict(type='SOFT', arch=SMALL, init_cfg=None),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    load_model_weights(model, str(dst))
    for key, value in model.state_dict().items():
        assert torch.equal(value, pth[key]), key
    # mmengine's loaders (load_from, Pretrained, --resume) read it too.
    loaded = CheckpointLoader.load_checkpoint(str(dst))
    assert set(loaded) == set(pth)
    # A format that contradicts the suffix is refused.
    code, _, err = run_main(SOFT2MM, capsys, src, tmp_path / 'x.pth',
                            '--format', 'safetensors')
    assert code == 1 and '.safetensors' in err
    assert not (tmp_path / 'x.pth').exists()
