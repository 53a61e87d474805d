# Copyright (c) soft_mm contributors. All rights reserved.
"""Every ImageNet config loads, builds its model, optimizer, schedule and
data pipeline, and holds its recipe (docs/design.md#training-recipes).

The ImageNet dataset itself is built on a fake ImageNet of a few generated
JPEGs in tmp_path, in both of mmpretrain's layouts (class folders and
annotation files).
"""
import glob
import importlib.util
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import (DATASETS, HOOKS, MODELS, PARAM_SCHEDULERS,
                                 TRANSFORMS)
from PIL import Image

import soft_mm  # noqa: F401
import soft_mm.engine  # noqa: F401  (RNGStateHook, StopOnInvalidLossHook)
from tool_utils import ROOT

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'soft', '*_in1k.py')))
# Configs of other tasks that are not ImageNet training recipes.
NOT_RECIPES = {'soft-tiny_mindspore-port_in1k.py'}
RECIPES = [c for c in CONFIGS if osp.basename(c) not in NOT_RECIPES]
NAME = re.compile(r'^(soft(?:-norm)?)-(tiny|small|medium|large|huge)_'
                  r'(\d+)xb(\d+)(-official)?(-amp(?:-bf16)?)?_in1k\.py$')
# docs/design.md#architecture: parameters with the 1000-class head, in
# millions.
PARAMS_M = dict(tiny=13.07, small=24.1, medium=45.8, large=64.7, huge=87.1)
# docs/design.md#training-recipes: the official recipe's lr at a batch of
# 1024.
OFFICIAL_LR = dict(tiny=1e-3, small=1e-3, medium=3.5e-4, large=3.3e-4,
                   huge=2.7e-4)

init_default_scope('mmpretrain')


def cfg_id(path):
    return osp.basename(path)[:-3]


def load(path):
    cfg = Config.fromfile(path)
    match = NAME.match(osp.basename(path))
    assert match, f'{osp.basename(path)} does not follow the naming scheme'
    return cfg, match


def transform(cfg_list, type_):
    (t, ) = [t for t in cfg_list if t['type'] == type_]
    return t


def test_the_expected_configs_exist():
    names = {osp.basename(c) for c in RECIPES}
    assert 'soft-tiny_8xb128_in1k.py' in names  # the headline (seed)
    for arch in PARAMS_M:
        for algo in ('soft', 'soft-norm'):
            layout = '8xb128' if arch in ('tiny', 'small') else '16xb64'
            assert f'{algo}-{arch}_{layout}-official_in1k.py' in names
            assert f'{algo}-{arch}_{layout}-official-amp_in1k.py' in names


@pytest.mark.parametrize('path', RECIPES, ids=cfg_id)
def test_recipe(path):
    cfg, m = load(path)
    algo, arch, n, b, official, amp = m.groups()
    n, b = int(n), int(b)
    # The name's layout is the config's, and the global batch is 1024.
    assert n * b == 1024 == cfg.auto_scale_lr.base_batch_size
    assert cfg.train_dataloader.batch_size == b
    assert cfg.model.backbone.arch == arch
    assert cfg.model.backbone.attn_norm == (algo == 'soft-norm')
    loss = cfg.model.head.loss
    assert (loss.type, loss.label_smooth_val, loss.mode) == (
        'LabelSmoothLoss', 0.1, 'original')
    assert cfg.train_cfg.max_epochs == 300
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.weight_decay == 0.05
    hooks = [h.type for h in cfg.custom_hooks]
    assert {'RNGStateHook', 'StopOnInvalidLossHook', 'SyncBuffersHook'} <= \
        set(hooks)
    for h in cfg.custom_hooks:
        HOOKS.build(h)
    if amp:
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        if amp.endswith('bf16'):
            assert cfg.optim_wrapper.dtype == 'bfloat16'
        else:
            assert cfg.optim_wrapper.loss_scale == 'dynamic'
    else:
        assert cfg.optim_wrapper.type == 'OptimWrapper'

    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and cosine.type == 'CosineAnnealingLR'
    assert warmup.convert_to_iter_based and cosine.convert_to_iter_based
    assert cosine.end == 300 and cosine.begin == warmup.end
    assert cosine.T_max == 300 - warmup.end
    rrc = transform(cfg.train_pipeline, 'RandomResizedCrop')
    assert rrc.scale == 224
    assert transform(cfg.test_pipeline, 'CenterCrop').crop_size == 224
    resize = transform(cfg.test_pipeline, 'ResizeEdge')
    augments = cfg.data_preprocessor.batch_augments.augments
    if official:
        assert opt.lr == OFFICIAL_LR[arch]
        assert warmup.end == 10
        assert warmup.start_factor * opt.lr == pytest.approx(1e-6)
        assert cosine.eta_min == 5e-5
        assert cfg.optim_wrapper.clip_grad == dict(max_norm=1.0)
        assert cfg.optim_wrapper.paramwise_cfg.flat_decay_mult == 0.0
        (ema, ) = [h for h in cfg.custom_hooks if h.type == 'EMAHook']
        assert ema.momentum == pytest.approx(1 - 0.99996)
        assert cfg.model.backbone.drop_path_rate == 0.1
        assert tuple(rrc.crop_ratio_range) == (0.08, 1.0)
        assert rrc.interpolation == 'bicubic'
        ra = transform(cfg.train_pipeline, 'RandAugment')
        assert (ra.policies, ra.magnitude_level, ra.magnitude_std,
                ra.num_policies) == ('timm_increasing', 9, 0.5, 2)
        assert transform(cfg.train_pipeline,
                         'RandomErasing').erase_prob == 0.25
        assert augments == [dict(type='Mixup', alpha=0.8),
                            dict(type='CutMix', alpha=1.0)]
        assert (resize.scale, resize.interpolation) == (248, 'bicubic')
    else:
        assert (arch, n, b) == ('tiny', 8, 128)
        assert opt.lr == 2.75e-3
        assert warmup.end == 15 and warmup.start_factor <= 1e-6
        assert cosine.eta_min == 0.0
        assert 'clip_grad' not in cfg.optim_wrapper
        assert 'EMAHook' not in hooks
        assert cfg.model.backbone.drop_path_rate == 0.0
        assert tuple(rrc.crop_ratio_range) == (0.05, 1.0)
        assert rrc.interpolation == 'bilinear'
        aa = transform(cfg.train_pipeline, 'AutoAugment')
        assert aa.policies == 'imagenet'
        assert augments == [dict(type='Mixup', alpha=0.2)]  # no CutMix
        assert (resize.scale, resize.interpolation) == (256, 'bilinear')
    for t in cfg.train_pipeline + cfg.test_pipeline:
        TRANSFORMS.build(t)


_MODELS = {}


@pytest.mark.parametrize('path', RECIPES, ids=cfg_id)
def test_model_builds(path):
    cfg, m = load(path)
    key = repr(cfg.model)
    if key not in _MODELS:  # the -amp twins share their model
        model = MODELS.build(
            dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
        _MODELS[key] = sum(p.numel() for p in model.parameters()) / 1e6
    assert _MODELS[key] == pytest.approx(PARAMS_M[m.group(2)], abs=0.06)


def _param_decay(cfg):
    """Weight decay of each parameter, and each parameter's ndim."""
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    by_id = {id(p): n for n, p in model.named_parameters()}
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[by_id[id(p)]] = group['weight_decay']
    return decay, {n: p.ndim for n, p in model.named_parameters()}


def test_weight_decay_exclusions():
    seed, _ = _param_decay(load(osp.join(ROOT, 'configs', 'soft',
                                         'soft-tiny_8xb128_in1k.py'))[0])
    # The seed's filter "beta,bias": biases and norm shifts only.
    for name, wd in seed.items():
        assert wd == (0.0 if 'bias' in name else 0.05), name
    assert seed['backbone.norm.weight'] == 0.05
    official, ndims = _param_decay(load(osp.join(
        ROOT, 'configs', 'soft', 'soft-tiny_8xb128-official_in1k.py'))[0])
    for name, wd in official.items():
        no_decay = ndims[name] == 1 or name == 'backbone.cls_token'
        assert wd == (0.0 if no_decay else 0.05), name
    assert official['backbone.pos_embeds.0'] == 0.05


@pytest.mark.parametrize('name,peak,floor,warmup', [
    ('soft-tiny_8xb128_in1k.py', 2.75e-3, 0.0, 15),
    ('soft-large_16xb64-official_in1k.py', 3.3e-4, 5e-5, 10),
])
def test_lr_curve(name, peak, floor, warmup):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'soft', name))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=cfg.optim_wrapper.optimizer.lr)
    steps_per_epoch = 2
    schedulers = [
        PARAM_SCHEDULERS.build(
            s, default_args=dict(optimizer=optimizer,
                                 epoch_length=steps_per_epoch))
        for s in cfg.param_scheduler
    ]
    lrs = []
    for _ in range(300 * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for s in schedulers:
            s.step()
    lrs = np.array(lrs)
    start = 1e-6 if floor else 0.0
    assert lrs[0] == pytest.approx(start, abs=1e-8)
    # mmengine's LinearLR reaches the peak on the warm-up's last step; the
    # cosine starts from it at the next.
    top = warmup * steps_per_epoch
    assert lrs[top - 1] == pytest.approx(peak, rel=1e-6)
    assert lrs[top] == pytest.approx(peak, rel=1e-6)
    assert lrs[top - 2] < peak and lrs.max() == pytest.approx(peak, rel=1e-6)
    assert lrs[-1] == pytest.approx(floor, abs=peak * 1e-4)
    mid = (warmup + 300) // 2 * steps_per_epoch
    assert lrs[mid] == pytest.approx((peak + floor) / 2, rel=0.02)


def _fake_imagenet(root, layout, classes=('n001', 'n002', 'n003')):
    """Two 80x60 JPEGs per class per split, in either of the layouts."""
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        lines = []
        for label, cls in enumerate(classes):
            for i in range(2):
                rel = f'{cls}/{cls}_{i}.JPEG'
                path = root / split / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(path, 'JPEG')
                lines.append(f'{rel} {label}')
        if layout == 'annotation':
            (root / 'meta').mkdir(exist_ok=True)
            (root / 'meta' / f'{split}.txt').write_text('\n'.join(lines))
    return list(classes)


@pytest.mark.parametrize('layout', ['folder', 'annotation'])
@pytest.mark.parametrize(
    'name', ['soft-tiny_8xb128_in1k.py', 'soft-tiny_8xb128-official_in1k.py'])
def test_dataset_and_pipeline(tmp_path, layout, name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'soft', name))
    classes = _fake_imagenet(tmp_path, layout)
    for loader in ('train_dataloader', 'val_dataloader'):
        ds_cfg = cfg[loader].dataset
        # The real class list has 1000 entries; three folders here.
        ds = DATASETS.build(
            dict(ds_cfg, data_root=str(tmp_path),
                 metainfo=dict(classes=classes)))
        assert len(ds) == 6
        if layout == 'annotation':
            ann = osp.join('meta', f'{ds_cfg.split}.txt')
            assert ds.ann_file.endswith(ann)
        sample = ds[5]
        assert tuple(sample['inputs'].shape) == (3, 224, 224)
        assert sample['data_samples'].gt_label.item() == 2


def test_train_step_with_batch_augments(tmp_path):
    """Mixup (a soft target) into the label-smoothing loss: a finite loss."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'soft', 'soft-tiny_8xb128_in1k.py'))
    classes = _fake_imagenet(tmp_path, 'folder')
    ds = DATASETS.build(
        dict(cfg.train_dataloader.dataset, data_root=str(tmp_path),
             metainfo=dict(classes=classes)))
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    from mmengine.dataset import pseudo_collate
    batch = model.data_preprocessor(pseudo_collate([ds[0], ds[3]]), True)
    # Mixup turned the labels into 1000-way soft scores.
    assert batch['data_samples'][0].gt_score.shape == (1000, )
    losses = model(**batch, mode='loss')
    assert torch.isfinite(losses['loss'])


def test_bad_inputs_fail_with_a_message_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError, match='no_such_config'):
        Config.fromfile(str(tmp_path / 'no_such_config.py'))
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'soft', 'soft-tiny_8xb128_in1k.py'))
    with pytest.raises(FileNotFoundError, match='missing_imagenet'):
        DATASETS.build(dict(cfg.train_dataloader.dataset,
                            data_root=str(tmp_path / 'missing_imagenet')))
    with pytest.raises(KeyError, match='tinyy'):
        MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone,
                                                   arch='tinyy')))
    # A corrupt image fails when it is read, naming the file.
    classes = _fake_imagenet(tmp_path, 'folder')
    bad = tmp_path / 'train' / 'n002' / 'n002_0.JPEG'
    bad.write_bytes(b'\xff\xd8 not a jpeg')
    ds = DATASETS.build(
        dict(cfg.train_dataloader.dataset, data_root=str(tmp_path),
             metainfo=dict(classes=classes)))
    with pytest.raises(Exception, match='n002_0.JPEG'):
        ds[2]


@pytest.mark.parametrize('arch', sorted(PARAMS_M))
def test_soft_norm_bases_differ_from_soft_in_attn_norm_only(arch):
    base = osp.join(ROOT, 'configs', '_base_', 'models', 'soft')
    plain = Config.fromfile(osp.join(base, f'soft-{arch}.py')).to_dict()
    norm = Config.fromfile(osp.join(base, f'soft-norm-{arch}.py')).to_dict()
    assert plain['model']['backbone'].pop('attn_norm') is False
    assert norm['model']['backbone'].pop('attn_norm') is True
    assert norm == plain


DENSE = sorted(
    glob.glob(osp.join(ROOT, 'configs', 'mmdet', '*.py')) +
    glob.glob(osp.join(ROOT, 'configs', 'mmseg', '*.py')))


@pytest.mark.parametrize('path', DENSE, ids=cfg_id)
def test_dense_configs_share_the_backbone(path):
    """The shared SOFT-Norm block arrives whole, and its helper variables
    do not leak into the resolved config."""
    package = 'mmdet' if '/mmdet/' in path else 'mmseg'
    # Resolving the `mmdet::` / `mmseg::` bases needs the package installed,
    # not importable (mmdet refuses to import next to mmcv-lite).
    if importlib.util.find_spec(package) is None:
        pytest.skip(f'{package} is not installed (tools/install_mmcv.sh)')
    cfg = Config.fromfile(path, import_custom_modules=False)
    assert not [k for k in cfg if k.startswith('soft_dense')]
    assert cfg.custom_imports.imports == ['soft_mm']
    backbone = cfg.model.backbone
    assert backbone.type == 'mmpretrain.SOFT' and backbone.attn_norm
    assert backbone.landmark_grid == 7
    assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    assert backbone.out_type == 'featmap' and backbone.norm_eval
    assert 'depth' not in backbone  # the ResNet settings are gone
    assert backbone.arch in osp.basename(path)
    assert backbone.init_cfg.checkpoint == (
        f'checkpoints/soft-norm-{backbone.arch}_in1k.pth')
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise.norm_decay_mult == 0.0
    assert set(paramwise.custom_keys) == {'.pos_embeds', '.cls_token'}
