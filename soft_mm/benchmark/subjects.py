# Copyright (c) soft_mm contributors. All rights reserved.
"""What the benchmarks measure, described as data for
:mod:`soft_mm.benchmark.measure`: the models compared with SOFT-tiny, the
default tables of the model benchmark, and the SOFT attention op at
SOFT-tiny's stage shapes."""
import importlib.util
from typing import Dict, Optional, Tuple

from soft_mm.archs import ARCH_DEFAULTS, ARCH_ZOO

#: Default models of the classifier comparison and of the backbone mode.
CLS_MODELS = ('soft-tiny', 'deit-tiny', 'deit-small', 'pcpvt-s', 'swin-t',
              'pvt-v2-b1')
BACKBONE_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'pcpvt-s', 'pvt-v2-b1')
#: SOFT-tiny built from an older checkout (the tool's ``--before-root``).
BEFORE_MODELS = ('soft-tiny-before', 'soft-tiny-grid7-before')
#: A few convolutions, torch only: for testing the protocol quickly.
TEST_MODELS = ('toy', 'toy-wide')
ALL_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'deit-tiny', 'deit-small',
              'pcpvt-s', 'swin-t', 'pvt-v2-b1') + BEFORE_MODELS + TEST_MODELS
#: What the ratios are relative to (the first model of a table without it).
BASELINE = 'soft-tiny'

#: The tables run when no ``--sizes`` are given: (pass, size, batch,
#: models). SOFT at 1024x1024 with the official landmarks (m ~ 1 000 per
#: head, Newton work ~ m^3) is not in them: bounded landmarks
#: (``landmark_grid=7``) only.
DEFAULT_TABLES = (
    ('train', (224, 224), 8,
     ('soft-tiny', 'soft-tiny-before', 'soft-tiny-grid7', 'pvt-v2-b1',
      'deit-tiny', 'pcpvt-s')),
    ('infer', (224, 224), 8,
     ('soft-tiny', 'soft-tiny-before', 'soft-tiny-grid7', 'pvt-v2-b1',
      'deit-tiny', 'pcpvt-s')),
    ('train', (1024, 1024), 1,
     ('soft-tiny-grid7', 'soft-tiny-grid7-before', 'pvt-v2-b1', 'deit-tiny')),
)


def static_skip(name: str, mode: str) -> Optional[str]:
    """Why ``name`` cannot run in ``mode`` here, known without starting a
    process (None if it can)."""
    if name == 'pvt-v2-b1' and importlib.util.find_spec('timm') is None:
        return 'timm not installed'
    if name.startswith('deit') and mode == 'backbone':
        return 'DeiT has no feature pyramid'
    return None


def model_subject(name: str, mode: str, size: Tuple[int, int]) -> dict:
    """The measured subject of a model name.

    Args:
        name (str): One of :data:`ALL_MODELS` (``*-before`` is built the
            same way, from whichever soft_mm its process imports).
        mode (str): ``'cls'`` (a classifier's logits) or ``'backbone'``
            (the four feature maps).
        size (tuple): Input ``(H, W)``; ViT position tables are built for it.

    Returns:
        dict: A ``'model'`` subject for :func:`soft_mm.benchmark.measure
        .measure`.
    """
    if name in TEST_MODELS:
        return dict(kind='model', toy=8 if name == 'toy' else 32)
    if name == 'pvt-v2-b1':
        return dict(kind='model', timm='pvt_v2_b1',
                    features_only=mode == 'backbone')
    pyramid = (0, 1, 2, 3) if mode == 'backbone' else (3, )
    imports = []
    if name.startswith('soft-tiny'):
        imports = ['soft_mm']  # registers SOFT
        backbone = dict(type='SOFT', arch='tiny', drop_path_rate=0.)
        if 'grid7' in name:
            backbone['landmark_grid'] = 7
        if mode == 'backbone':
            backbone.update(out_indices=(0, 1, 2, 3), out_type='featmap')
        channels, neck = 512, False
    elif name.startswith('deit'):
        backbone = dict(type='VisionTransformer', arch=name,
                        img_size=list(size), patch_size=16,
                        drop_path_rate=0.)
        channels, neck = (192 if name == 'deit-tiny' else 384), False
    elif name == 'pcpvt-s':
        backbone = dict(type='PCPVT', arch='small', drop_path_rate=0.,
                        out_indices=pyramid)
        channels, neck = 512, True
    elif name == 'swin-t':
        backbone = dict(type='SwinTransformer', arch='tiny',
                        img_size=list(size), drop_path_rate=0.,
                        pad_small_map=True, out_indices=pyramid)
        channels, neck = 768, True
    else:
        raise ValueError(f'unknown model {name!r}')
    if mode == 'backbone':
        return dict(kind='model', imports=imports, registry=backbone)
    classifier = dict(
        type='ImageClassifier',
        backbone=backbone,
        neck=dict(type='GlobalAveragePooling') if neck else None,
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=channels))
    return dict(kind='model', imports=imports, registry=classifier,
                tensor_mode=True)


def tiny_stages() -> Dict[int, Tuple[int, int, int]]:
    """``{stage: (heads, sr, head_dim)}`` of SOFT-tiny's SOFT-attention
    stages (1-3)."""
    arch = ARCH_ZOO['tiny']
    return {
        i + 1: (arch['num_heads'][i], sr,
                arch['embed_dims'][i] // arch['num_heads'][i])
        for i, sr in enumerate(ARCH_DEFAULTS['sr_ratios'])
    }


def stage_shape(size: int, stage: int, batch: int) -> Tuple[int, ...]:
    """``(B, h, n, m, d)`` of a SOFT-tiny attention stage at a square input
    size (the official landmark ratios)."""
    heads, sr, head_dim = tiny_stages()[stage]
    res = size // (4 * 2**(stage - 1))
    return batch, heads, res * res, (res // sr)**2, head_dim
