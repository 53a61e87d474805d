# Copyright (c) soft_mm contributors. All rights reserved.
import copy
import re
import warnings

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from soft_mm.models import SOFT
from soft_mm.models.backbones.soft import ClsBlock, SoftBlock
from soft_mm.models.utils import SoftAttention
from soft_mm.ops import ext_device_types, triton_device_types

REFERENCE_PARAMS_M = dict(
    tiny=13.07, small=24.11, medium=45.81, large=64.70, huge=87.11)


def build_classifier(arch, **backbone_kwargs):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='SOFT', arch=arch, **backbone_kwargs),
            head=dict(
                type='LinearClsHead', num_classes=1000, in_channels=512)))


@pytest.mark.parametrize('arch', sorted(REFERENCE_PARAMS_M))
def test_param_counts_match_reference(arch):
    model = build_classifier(arch)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(params, 2) == REFERENCE_PARAMS_M[arch]


def test_arch_table_and_errors():
    small = SOFT(arch='small')
    assert small.depths == [1, 3, 7, 4]
    assert SOFT.arch_zoo['medium']['embed_dims'][2] == 288
    with pytest.raises(KeyError, match='unknown arch'):
        SOFT(arch='gigantic')
    with pytest.raises(KeyError, match='missing'):
        SOFT(arch=dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 1, 1]))
    with pytest.raises(KeyError, match='unknown arch keys'):
        SOFT(arch=dict(**SOFT.arch_zoo['tiny'], window=7))
    with pytest.raises(ValueError, match='4 values'):
        SOFT(arch=dict(SOFT.arch_zoo['tiny'], depths=[1, 2, 3]))
    with pytest.raises(TypeError):
        SOFT(arch=3)
    with pytest.raises(ValueError, match='out_type'):
        SOFT(out_type='raw')
    with pytest.raises(ValueError, match='outside'):
        SOFT(out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        SOFT(frozen_stages=4)
    with pytest.raises(ValueError, match='drop_mode'):
        SOFT(soft_drop_mode='spatial')


def test_official_small_depths_as_custom_arch():
    arch = dict(SOFT.arch_zoo['small'], depths=[1, 3, 20, 4])
    model = build_classifier(arch)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert 38.5 < params < 39.5  # the official code's 38.9 M


def tiny_custom(**kwargs):
    """A narrow SOFT for fast structural tests."""
    arch = dict(
        embed_dims=[16, 32, 64, 64],
        num_heads=[1, 2, 2, 2],
        depths=[1, 1, 2, 1],
        stem_channels=8)
    return SOFT(arch=arch, **kwargs)


@pytest.mark.parametrize('size', [(224, 224), (256, 256), (256, 309),
                                  (97, 131)])
def test_featmap_shapes_and_strides(size):
    model = tiny_custom(out_indices=(0, 1, 2, 3), out_type='featmap')
    model.eval()
    H, W = size
    with torch.no_grad():
        outs = model(torch.randn(2, 3, H, W))
    assert len(outs) == 4
    h, w = H, W
    for i, (out, dims) in enumerate(zip(outs, model.embed_dims)):
        # Stride-2 3x3 convs with padding 1: ceil per halving.
        for _ in range(2 if i == 0 else 1):
            h, w = (h + 1) // 2, (w + 1) // 2
        assert out.shape == (2, dims, h, w), (i, out.shape)


def test_out_types_and_indices():
    x = torch.randn(1, 3, 64, 96)
    model = tiny_custom(out_indices=-1, out_type='cls_token').eval()
    cls_out, = model(x)
    assert cls_out.shape == (1, 64)
    model.out_type = 'featmap'
    fmap, = model(x)
    assert fmap.shape == (1, 64, 2, 3)
    model.out_type = 'avg_featmap'
    avg, = model(x)
    torch.testing.assert_close(avg, fmap.flatten(2).mean(-1))
    model = tiny_custom(out_indices=(2, 0)).eval()
    assert model.out_indices == (0, 2)
    outs = model(x)
    assert [o.shape[1] for o in outs] == [16, 64]


def test_tiny_sizes_below_sampling_ratio():
    # 32x32 gives a 8x8 stage-1 map (= sr), 16x16 gives 4x4 (< sr 8): the
    # landmark map is padded to one cell instead of being empty.
    model = tiny_custom(out_indices=(0, 1, 2, 3), out_type='featmap').eval()
    for size in (32, 16, 9):
        outs = model(torch.randn(1, 3, size, size))
        assert all(torch.isfinite(o).all() for o in outs)


def test_pos_embed_resized_bilinear():
    model = tiny_custom(out_indices=(0, ), out_type='featmap').eval()
    x = torch.randn(1, 10 * 12, 16)
    out = model.add_pos_embed(x, 0, (10, 12))
    table = model.pos_embeds[0].reshape(1, 56, 56, 16).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(
        table, size=(10, 12), mode='bilinear', align_corners=False)
    torch.testing.assert_close(out - x, expected.flatten(2).transpose(1, 2))
    # Stage 4 keeps the cls slot as it is.
    x4 = torch.zeros(1, 1 + 3 * 5, 64)
    out4 = model.add_pos_embed(x4, 3, (3, 5))
    torch.testing.assert_close(out4[:, 0], model.pos_embeds[3][:, 0])


def test_drop_rate_schedule_and_modes():
    model = SOFT(arch='tiny', drop_path_rate=0.3)
    rates = torch.linspace(0, 0.3, 8).tolist()
    blocks = [b for stage in model.stages for b in stage]
    for block, rate in zip(blocks[:6], rates[:6]):
        assert isinstance(block.drop, torch.nn.Dropout)
        assert block.drop.p == pytest.approx(rate)
    for block, rate in zip(blocks[6:], rates[6:]):
        assert block.drop_path.drop_prob == pytest.approx(rate)
    model = SOFT(arch='tiny', drop_path_rate=0.3, soft_drop_mode='drop_path')
    assert model.stages[2][2].drop.drop_prob == pytest.approx(rates[5])


def test_frozen_stages_and_norm_eval():
    model = tiny_custom(frozen_stages=1, norm_eval=True)
    model.train()
    for i in range(2):
        assert not model.pos_embeds[i].requires_grad
        for module in (model.patch_embeds[i], model.stages[i]):
            assert not module.training
            assert all(not p.requires_grad for p in module.parameters())
    assert model.stages[2].training
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert model.cls_token.requires_grad
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            assert not m.training
    model = tiny_custom(frozen_stages=3)
    model.train()
    assert not model.cls_token.requires_grad
    assert all(not p.requires_grad for p in model.parameters())


def test_with_cp_gives_same_gradients():
    torch.manual_seed(0)
    model = tiny_custom(out_indices=(0, 1, 2, 3), out_type='featmap',
                        drop_path_rate=0.)
    model_cp = copy.deepcopy(model)
    model_cp.with_cp = True
    x = torch.randn(2, 3, 64, 64)
    for m in (model, model_cp):
        m.train()
        sum(o.square().mean() for o in m(x)).backward()
    for (name, p), p_cp in zip(model.named_parameters(),
                               model_cp.parameters()):
        torch.testing.assert_close(p.grad, p_cp.grad, msg=name)


def test_get_layer_depth():
    model = SOFT(arch='tiny')
    num_layers = sum(model.depths) + 2
    assert model.get_layer_depth('backbone.patch_embeds.0.projection.0.'
                                 'conv.weight', 'backbone.') == (0, num_layers)
    assert model.get_layer_depth('backbone.stages.0.0.attn.q.weight',
                                 'backbone.')[0] == 1
    assert model.get_layer_depth('backbone.patch_embeds.1.projection.0.'
                                 'conv.weight', 'backbone.')[0] == 1
    assert model.get_layer_depth('backbone.stages.2.1.norm1.weight',
                                 'backbone.')[0] == 1 + 2 + 1 + 1
    assert model.get_layer_depth('backbone.stages.3.1.mlp.fc1.weight',
                                 'backbone.')[0] == 8
    assert model.get_layer_depth('backbone.norm.weight',
                                 'backbone.')[0] == num_layers - 1
    assert model.get_layer_depth('head.fc.weight',
                                 'backbone.')[0] == num_layers - 1


def test_init_weights_reference_init():
    model = tiny_custom()
    model.init_weights()
    linear = model.stages[0][0].attn.q
    assert linear.bias.abs().max() == 0
    assert 0.01 < linear.weight.std() < 0.03
    assert model.pos_embeds[0].abs().max() > 0
    assert torch.all(model.stages[1][0].norm1.weight == 1)


def test_soft_norm_differs_only_in_normalisation(monkeypatch):
    torch.manual_seed(0)
    plain = tiny_custom(out_type='featmap').eval()
    normed = tiny_custom(out_type='featmap', attn_norm=True).eval()
    normed.load_state_dict(plain.state_dict())
    assert set(plain.state_dict()) == set(normed.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(plain(x)[0], normed(x)[0])
    # Switching the flag on the plain model reproduces SOFT-Norm exactly.
    for m in plain.modules():
        if isinstance(m, SoftAttention):
            m.attn_norm = True
    torch.testing.assert_close(plain(x)[0], normed(x)[0])


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_forward_close_to_fp32(dtype):
    torch.manual_seed(0)
    model = SOFT(arch='tiny', out_type='featmap').eval()
    model.init_weights()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)[0]
        with torch.autocast('cpu', dtype=dtype):
            out = model(x)[0]
    assert torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05, rel


def test_soft_block_shapes():
    block = SoftBlock(64, 2, sr_ratio=4, local_kernel=5, attn_norm=True)
    x = torch.randn(2, 12 * 10, 64)
    assert block(x, (12, 10)).shape == x.shape


def test_builds_from_config_with_custom_imports_and_scope():
    from mmengine.config import Config
    from mmengine.registry import MODELS as ROOT_MODELS
    cfg = Config(
        dict(
            custom_imports=dict(imports=['soft_mm'],
                                allow_failed_imports=False),
            model=dict(type='mmpretrain.SOFT', arch='tiny')))
    backbone = ROOT_MODELS.build(cfg.model)
    assert isinstance(backbone, SOFT)


TINY = SOFT.arch_zoo['tiny']


def tiny_with(**keys):
    return dict(TINY, **keys)


def no_kernel(impl):
    """``attn_impl=impl`` is refused at build where its kernel is missing
    (the case is skipped where the kernel exists)."""
    exists = (bool(triton_device_types()) if impl == 'triton' else
              impl in ext_device_types())
    return pytest.param(
        dict(attn_impl=impl), ValueError, 'attn_impl',
        marks=pytest.mark.skipif(exists, reason=f'a {impl} kernel exists'),
        id=f'attn_impl={impl}')


# (SOFT kwargs, error type, the key the message must name)
BAD_BACKBONE_ARGS = [
    (dict(img_size=0), ValueError, 'img_size'),
    (dict(img_size=(224, 224, 3)), ValueError, 'img_size'),
    # arch: types
    (dict(arch=tiny_with(embed_dims=64)), TypeError, 'embed_dims'),
    (dict(arch=tiny_with(depths=[1, 2.0, 3, 2])), TypeError, 'depths'),
    (dict(arch=tiny_with(sr_ratios='842')), TypeError, 'sr_ratios'),
    (dict(arch=tiny_with(sr_ratios=1)), TypeError, 'sr_ratios'),
    (dict(arch=tiny_with(num_heads=[2, 4, True, 16])), TypeError,
     'num_heads'),
    (dict(arch=tiny_with(local_kernels=[9, 5, 3.0])), TypeError,
     'local_kernels'),
    (dict(arch=tiny_with(stem_channels=32.)), TypeError, 'stem_channels'),
    (dict(arch=tiny_with(soft_mlp_ratio='4')), TypeError, 'soft_mlp_ratio'),
    # arch: lengths and ranges
    (dict(arch=tiny_with(sr_ratios=[8, 4])), ValueError, 'sr_ratios'),
    (dict(arch=tiny_with(sr_ratios=[8, 0, 2])), ValueError, 'sr_ratios'),
    (dict(arch=tiny_with(num_heads=[2, 4, 0, 16])), ValueError,
     'num_heads'),
    (dict(arch=tiny_with(num_heads=[2, 4, 3, 16])), ValueError,
     'num_heads'),  # 3 does not divide 320
    (dict(arch=tiny_with(embed_dims=[64, 128, 320, -512])), ValueError,
     'embed_dims'),
    (dict(arch=tiny_with(depths=[1, 0, 3, 2])), ValueError, 'depths'),
    (dict(arch=tiny_with(local_kernels=[9, 4, 3])), ValueError,
     'local_kernels'),
    (dict(arch=tiny_with(local_kernels=[9, 5, -1])), ValueError,
     'local_kernels'),
    (dict(arch=tiny_with(mlp_ratio=0)), ValueError, 'mlp_ratio'),
    (dict(arch=tiny_with(mlp_ratio=float('inf'))), ValueError, 'mlp_ratio'),
    # backbone arguments
    (dict(in_channels=0), ValueError, 'in_channels'),
    (dict(in_channels=True), TypeError, 'in_channels'),
    (dict(attn_norm=1), TypeError, 'attn_norm'),
    (dict(attn_norm='yes'), TypeError, 'attn_norm'),
    (dict(attn_impl='gpu'), ValueError, 'attn_impl'),
    no_kernel('cuda'),
    no_kernel('npu'),
    no_kernel('triton'),
    (dict(newton_iters=-1), ValueError, 'newton_iters'),
    (dict(newton_iters=20.), TypeError, 'newton_iters'),
    (dict(newton_iters=True), TypeError, 'newton_iters'),
    (dict(landmark_grid=0), ValueError, 'landmark_grid'),
    (dict(landmark_grid=(7, 0)), ValueError, 'landmark_grid'),
    (dict(landmark_grid=(7, )), TypeError, 'landmark_grid'),
    (dict(landmark_grid=7.), TypeError, 'landmark_grid'),
    (dict(drop_path_rate=-0.1), ValueError, 'drop_path_rate'),
    (dict(drop_path_rate=1.5), ValueError, 'drop_path_rate'),
    (dict(drop_path_rate=1.), ValueError, 'drop_path_rate'),
    (dict(drop_path_rate=float('nan')), ValueError, 'drop_path_rate'),
    (dict(drop_path_rate='0.1'), TypeError, 'drop_path_rate'),
    (dict(soft_drop_mode='spatial'), ValueError, 'soft_drop_mode'),
    (dict(out_type='raw'), ValueError, 'out_type'),
    (dict(out_indices=(True, )), TypeError, 'out_indices'),
    (dict(out_indices=[0.5]), TypeError, 'out_indices'),
    (dict(out_indices=(4, )), ValueError, 'out_indices'),
    (dict(frozen_stages=True), ValueError, 'frozen_stages'),
    (dict(frozen_stages=4), ValueError, 'frozen_stages'),
    (dict(norm_eval='no'), TypeError, 'norm_eval'),
    (dict(with_cp=1), TypeError, 'with_cp'),
    (dict(conv_bias=None), TypeError, 'conv_bias'),
    (dict(interpolate_mode='nearest'), ValueError, 'interpolate_mode'),
    (dict(soft_act_cfg='gelu'), TypeError, 'soft_act_cfg'),
    (dict(cls_act_cfg=dict(approximate='tanh')), TypeError, 'cls_act_cfg'),
    (dict(cls_norm_eps=0), ValueError, 'cls_norm_eps'),
    (dict(cls_norm_eps=float('inf')), ValueError, 'cls_norm_eps'),
]


@pytest.mark.parametrize('kwargs,error,key', BAD_BACKBONE_ARGS)
def test_bad_backbone_arguments_name_the_key(kwargs, error, key):
    with pytest.raises(error, match=re.escape(key)):
        SOFT(**kwargs)


@pytest.mark.parametrize('build,error,key', [
    (lambda: SoftBlock(64, 2, 2, 3, drop_rate=2.), ValueError, 'drop_rate'),
    (lambda: SoftBlock(64, 2, 2, 3, mlp_ratio=-4), ValueError, 'mlp_ratio'),
    (lambda: SoftBlock(64, 2, 2, 3, drop_mode='x'), ValueError, 'drop_mode'),
    (lambda: ClsBlock(64, 0), ValueError, 'num_heads'),
    (lambda: ClsBlock(64, 2, drop_path_rate=-1), ValueError,
     'drop_path_rate'),
])
def test_bad_block_arguments_name_the_key(build, error, key):
    with pytest.raises(error, match=re.escape(key)):
        build()


def test_good_arguments_in_other_spellings_build():
    # tuples, numpy ints, a pair landmark grid, the attention kernels that
    # exist here.
    arch = dict(embed_dims=(16, 32, 64, 64),
                num_heads=tuple(np.array([1, 2, 2, 2])),
                depths=[1, 1, 1, 1], sr_ratios=(4, 2, 1),
                local_kernels=[3, 3, 1], stem_channels=np.int64(8),
                mlp_ratio=2.5)
    model = SOFT(arch=arch, landmark_grid=(2, 3), attn_impl='reference',
                 drop_path_rate=0, interpolate_mode='bicubic')
    assert model.arch_settings['num_heads'] == [1, 2, 2, 2]
    assert all(type(v) is int for v in model.arch_settings['num_heads'])
    assert model.stages[0][0].attn.landmark_grid == (2, 3)
    for impl in ext_device_types():
        SOFT(arch=arch, attn_impl=impl)


@pytest.mark.parametrize('form', ['dict', 'list', 'list-first'])
def test_pretrained_init_cfg_keeps_the_checkpoint(tmp_path, form):
    torch.manual_seed(0)
    source = tiny_custom()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    ckpt = tmp_path / 'backbone.pth'
    torch.save({'state_dict': source.state_dict()}, ckpt)
    pretrained = dict(type='Pretrained', checkpoint=str(ckpt))
    others = [dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
              dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]
    init_cfg = {'dict': pretrained, 'list': others + [pretrained],
                'list-first': [pretrained] + others}[form]
    model = tiny_custom(init_cfg=init_cfg)
    model.init_weights()
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    # Initialised once: a second call redraws nothing.
    model.init_weights()
    assert torch.equal(model.cls_token, source.cls_token)


def test_init_weights_draws_tables_without_checkpoint():
    torch.manual_seed(0)
    model = tiny_custom()
    model.init_weights()
    for table in [*model.pos_embeds, model.cls_token]:
        assert 0.01 < table.std() < 0.03


@pytest.mark.parametrize('impl', ['auto', 'reference'])
@pytest.mark.parametrize('out_type', SOFT.OUT_TYPES)
def test_empty_batch_gives_empty_outputs(out_type, impl):
    x = torch.randn(2, 3, 64, 48)
    model = tiny_custom(out_indices=(0, 1, 2, 3), out_type=out_type,
                        attn_impl=impl, drop_path_rate=0.1).eval()
    with torch.no_grad():
        expected = [o.shape[1:] for o in model(x)]
    for training in (False, True):
        model.train(training)
        outs = model(x[:0])
        assert [o.shape for o in outs] == [(0, *s) for s in expected]
        if training:
            sum(o.sum() for o in outs).backward()
            for name, p in model.named_parameters():
                assert p.grad is not None and not p.grad.any(), name
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    assert all(torch.isfinite(b).all() for b in buffers)


@pytest.mark.parametrize('x,error,match', [
    (torch.randn(3, 64, 64), ValueError, r'\(B, C, H, W\).*3-D'),
    (torch.randn(1, 1, 3, 64, 64), ValueError, '5-D'),
    (torch.randn(2, 4, 64, 64), ValueError, 'in_channels'),
    (torch.randn(2, 3, 0, 64), ValueError, 'H, W'),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), TypeError, 'uint8'),
    ([[0.]], TypeError, 'list'),
])
def test_bad_inputs_are_refused_clearly(x, error, match):
    model = tiny_custom().eval()
    with pytest.raises(error, match=match):
        model(x)


def test_warns_once_when_newton_work_dominates():
    """Official landmark ratios at high resolution: m grows with the image
    and the Newton work with m^3; the backbone says so once, with the
    remedy. Bounded landmarks (landmark_grid) or 224 inputs: no warning."""
    arch = dict(TINY, depths=[1, 1, 1, 1])  # SOFT-tiny's widths, faster
    model = SOFT(arch=arch, drop_path_rate=0.).eval()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with torch.no_grad():
            model(torch.randn(1, 3, 224, 224))
            SOFT(arch=arch, landmark_grid=7).eval()(
                torch.randn(1, 3, 512, 512))
            # Newton work that dominates a toy block but is negligible
            # (m = 24, ~0.001 GMACs): quiet.
            toy = dict(arch, embed_dims=[8, 16, 32, 64],
                       num_heads=[1, 1, 1, 1], sr_ratios=[4, 2, 1])
            SOFT(arch=toy).eval()(torch.randn(1, 3, 64, 96))
    with pytest.warns(UserWarning, match=r'stage 2 \(64x64 tokens, '
                      r'landmark ratio 4\) attends through m = 256 '
                      r'landmarks.*landmark_grid=7') as record:
        with torch.no_grad():
            model(torch.randn(1, 3, 512, 512))
            model(torch.randn(1, 3, 512, 512))
    assert len([w for w in record if 'Newton steps' in str(w.message)]) == 1


def test_meta_device_gives_shapes():
    """Built under ``torch.device('meta')`` or moved there, the backbone
    runs forward and backward on meta tensors (shape inference, deferred
    init): the op picks the reference quietly, autocast is not asked
    about 'meta'."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with torch.device('meta'):
            model = SOFT(arch='tiny', landmark_grid=7, attn_norm=True,
                         out_indices=(0, 1, 2, 3))
            outs = model(torch.empty(2, 3, 96, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 64, 24, 16),
                                              (2, 128, 12, 8),
                                              (2, 320, 6, 4), (2, 512)]
    assert all(o.is_meta for o in outs)
    sum(o.sum() for o in outs).backward()
    assert model.stages[0][0].ffn.fc1.weight.grad.is_meta
