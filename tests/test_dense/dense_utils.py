# Copyright (c) soft_mm contributors. All rights reserved.
"""Helpers of the detection / segmentation tests (data writers, config
edits, log capture).

The tests run the configs of ``configs/mmdet`` and ``configs/mmseg`` on tiny
datasets written here in the COCO and ADE20K layouts, at a small input
resolution so that a CPU step takes seconds. They need mmdet / mmseg and the
full mmcv (compiled ops), which ``tools/install_mmcv.sh`` installs.
"""
import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
DET_CONFIG_DIR = REPO_ROOT / 'configs' / 'mmdet'
SEG_CONFIG_DIR = REPO_ROOT / 'configs' / 'mmseg'
CLS_TINY_CONFIG = (
    REPO_ROOT / 'configs' / '_base_' / 'models' / 'soft' / 'soft-norm-tiny.py')
INSTALL_HINT = 'run tools/install_mmcv.sh to install them'

# Embed dims of each arch (docs/design.md, "Architecture"): the neck / head
# in_channels.
EMBED_DIMS = {
    'tiny': [64, 128, 320, 512],
    'small': [64, 128, 320, 512],
    'medium': [64, 128, 288, 512],
    'large': [64, 128, 320, 512],
}


def require_dense_toolbox(name: str):
    """Skip the calling test module unless toolbox ``name`` and mmcv's
    compiled ops import.

    Only a missing package (ImportError) skips; an installed but broken
    toolbox (e.g. an mmcv version mmdet refuses) fails loudly.
    """
    try:
        from mmcv.ops import nms  # noqa: F401
    except ImportError as e:
        pytest.skip(
            f'needs the full mmcv with compiled ops, not mmcv-lite '
            f'({e}); {INSTALL_HINT}',
            allow_module_level=True)
    try:
        __import__(name)
    except ImportError as e:
        pytest.skip(f'needs {name} ({e}); {INSTALL_HINT}',
                    allow_module_level=True)


# ------------------------------------------------------------------ data


def _random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A BGR uint8 image: smooth noise with a few bright rectangles."""
    img = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = np.kron(img, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]
    return np.ascontiguousarray(img)


def write_coco(root: Path, num_train: int = 2, num_val: int = 2,
               size=(64, 80), seed: int = 0) -> Path:
    """Write a tiny COCO-layout instance dataset under ``root``.

    ``annotations/instances_{train,val}2017.json`` with all 80 COCO
    categories (so that any predicted label maps to a category id), and
    images in ``train2017/`` and ``val2017/``, each with 1-3 boxes whose
    polygon masks are the boxes themselves.

    Returns:
        Path: ``root``.
    """
    import mmcv
    from mmdet.datasets import CocoDataset

    rng = np.random.default_rng(seed)
    h, w = size
    categories = [
        dict(id=i + 1, name=name)
        for i, name in enumerate(CocoDataset.METAINFO['classes'])
    ]
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    ann_id = 1
    for split, num in (('train2017', num_train), ('val2017', num_val)):
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(num):
            img_id = len(images) + 1
            file_name = f'{i:012d}.jpg'
            img = _random_image(rng, h, w)
            for _ in range(rng.integers(1, 4)):
                bw, bh = rng.integers(16, 40), rng.integers(16, 40)
                x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
                img[y0:y0 + bh, x0:x0 + bw] = 255
                poly = [x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]
                annotations.append(
                    dict(
                        id=ann_id,
                        image_id=img_id,
                        category_id=int(rng.integers(1, 4)),
                        bbox=[int(x0), int(y0), int(bw), int(bh)],
                        area=int(bw * bh),
                        iscrowd=0,
                        segmentation=[[int(v) for v in poly]]))
                ann_id += 1
            mmcv.imwrite(img, str(root / split / file_name))
            images.append(
                dict(id=img_id, file_name=file_name, height=h, width=w))
        with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
            json.dump(
                dict(
                    images=images,
                    annotations=annotations,
                    categories=categories), f)
    return root


def write_ade20k(root: Path, num_train: int = 2, num_val: int = 2,
                 size=(64, 80), seed: int = 0) -> Path:
    """Write a tiny ADE20K-layout dataset under ``root``.

    ``images/{training,validation}/*.jpg`` and label maps
    ``annotations/{training,validation}/*.png`` with ADE20K's encoding
    (0 = other, 1-150 = classes; mmseg reduces them to 255 / 0-149).

    Returns:
        Path: ``root``.
    """
    import mmcv

    rng = np.random.default_rng(seed)
    h, w = size
    for split, num in (('training', num_train), ('validation', num_val)):
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for i in range(num):
            name = f'ADE_{split[:5]}_{i:08d}'
            label = np.zeros((h, w), dtype=np.uint8)
            for _ in range(4):
                y0, x0 = rng.integers(0, h - 16), rng.integers(0, w - 16)
                label[y0:y0 + rng.integers(8, 32),
                      x0:x0 + rng.integers(8, 40)] = rng.integers(1, 151)
            img = _random_image(rng, h, w)
            img[label > 0] //= 2
            mmcv.imwrite(img, str(root / 'images' / split / f'{name}.jpg'))
            mmcv.imwrite(label,
                         str(root / 'annotations' / split / f'{name}.png'))
    return root


# ---------------------------------------------------------------- config edits


def small_resize_pipeline(pipeline, scale, crop_size=None):
    """Copy of ``pipeline`` with the resize steps scaled down to ``scale``
    and random crops to ``crop_size`` (the configs resize to 1333x800 /
    2048x512; CPU tests use about a hundred pixels)."""
    pipeline = copy.deepcopy(pipeline)
    for step in pipeline:
        if step['type'] in ('Resize', 'RandomResize'):
            step['scale'] = scale
        if step['type'] == 'RandomCrop':
            assert crop_size is not None, 'pipeline has a RandomCrop'
            step['crop_size'] = crop_size
    return pipeline


def finite_losses(losses: dict) -> dict:
    """Sum the loss terms of a ``mode='loss'`` output; assert all finite.

    Returns:
        dict: ``{name: float}`` of the loss terms.
    """
    values = {}
    for name, value in losses.items():
        if 'loss' not in name:
            continue
        total = sum(value) if isinstance(value, (list, tuple)) else value
        assert torch.isfinite(total).all(), f'{name} is not finite: {total}'
        values[name] = float(total.detach())
    assert values, f'no loss terms in {sorted(losses)}'
    return values


def make_record_hook():
    """A mmengine hook recording a Runner's train losses and val metrics.

    Returns:
        Hook: with lists ``train_losses`` (one dict per iteration) and
        ``val_metrics`` (one dict per validation).
    """
    from mmengine.hooks import Hook

    class RecordHook(Hook):
        priority = 'VERY_LOW'

        def __init__(self):
            self.train_losses = []
            self.val_metrics = []

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.train_losses.append(
                {k: float(torch.as_tensor(v).detach())
                 for k, v in outputs.items()})

        def after_val_epoch(self, runner, metrics=None):
            self.val_metrics.append(dict(metrics or {}))

    return RecordHook()


class LogCapture(logging.Handler):
    """Collect the messages of the current MMLogger (mmengine reports the
    state-dict mismatches of ``init_cfg=Pretrained`` there)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        from mmengine.logging import MMLogger
        self.logger = MMLogger.get_current_instance()
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    @property
    def text(self) -> str:
        return '\n'.join(self.messages)


def load_config(directory: Path, name: str):
    """``Config.fromfile`` of ``directory / name``, asserting it exists."""
    from mmengine.config import Config
    path = directory / name
    assert path.is_file(), f'missing config {path}'
    return Config.fromfile(str(path))


def arch_of(config_name: str) -> str:
    """``'small'`` for ``'upernet_soft-norm-small_4xb4-...py'``."""
    return config_name.split('soft-norm-')[1].split('_')[0]


def check_backbone_cfg(backbone_cfg, arch: str):
    """The backbone settings every dense config promises (README): the
    SOFT-Norm ``arch`` with bounded landmarks, four NCHW maps, and an
    ImageNet classifier checkpoint loaded through ``init_cfg``."""
    assert backbone_cfg.type == 'mmpretrain.SOFT'
    assert backbone_cfg.arch == arch and backbone_cfg.attn_norm is True
    assert backbone_cfg.landmark_grid == 7
    assert tuple(backbone_cfg.out_indices) == (0, 1, 2, 3)
    assert backbone_cfg.out_type == 'featmap'
    assert backbone_cfg.init_cfg.type == 'Pretrained'
    assert backbone_cfg.init_cfg.prefix == 'backbone.'
    assert f'soft-norm-{arch}' in backbone_cfg.init_cfg.checkpoint


def make_batch(cfg, split: str, datasets, num: int = 2) -> dict:
    """The first ``num`` samples of ``cfg``'s ``split`` dataset, collated.

    Args:
        cfg (Config): A config with ``{split}_dataloader``.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        datasets (Registry): The toolbox's ``DATASETS`` registry.
        num (int): Number of samples. Defaults to 2.
    """
    from mmengine.dataset import pseudo_collate
    dataset = datasets.build(cfg[f'{split}_dataloader'].dataset)
    assert len(dataset) >= num, f'tiny {split} set has {len(dataset)} images'
    return pseudo_collate([dataset[i] for i in range(num)])
