# Copyright (c) soft_mm contributors. All rights reserved.
"""What is measured: the op's shapes follow SOFT-tiny, model subjects."""
import importlib.util

import pytest

from soft_mm.benchmark.subjects import (DEFAULT_TABLES, model_subject,
                                        stage_shape, static_skip, tiny_stages)


def test_op_shapes_follow_the_arch_zoo():
    assert stage_shape(224, 1, 64) == (64, 2, 3136, 49, 32)
    assert stage_shape(224, 3, 1) == (1, 10, 196, 49, 32)
    assert stage_shape(512, 2, 1) == (1, 4, 4096, 256, 32)
    pytest.importorskip('mmpretrain')
    from soft_mm.models.backbones import SOFT
    tiny = SOFT.arch_zoo['tiny']
    assert tiny_stages() == {
        i + 1: (tiny['num_heads'][i], sr,
                tiny['embed_dims'][i] // tiny['num_heads'][i])
        for i, sr in enumerate(SOFT.arch_defaults['sr_ratios'])
    }


def test_model_subjects():
    soft = model_subject('soft-tiny-grid7', 'backbone', (64, 64))
    assert soft['imports'] == ['soft_mm']
    assert soft['registry']['landmark_grid'] == 7
    assert soft['registry']['out_indices'] == (0, 1, 2, 3)
    deit = model_subject('deit-tiny', 'cls', (32, 48))
    assert deit['tensor_mode'] and deit['registry']['backbone'][
        'img_size'] == [32, 48]
    assert model_subject('pvt-v2-b1', 'backbone', (64, 64))['features_only']
    with pytest.raises(ValueError, match='unknown model'):
        model_subject('resnet', 'cls', (32, 32))
    assert static_skip('deit-tiny', 'backbone') == ('DeiT has no feature '
                                                    'pyramid')
    if importlib.util.find_spec('timm') is None:
        assert static_skip('pvt-v2-b1', 'cls') == 'timm not installed'
    assert [t[:3] for t in DEFAULT_TABLES] == [
        ('train', (224, 224), 8), ('infer', (224, 224), 8),
        ('train', (1024, 1024), 1)]
