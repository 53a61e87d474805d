# Copyright (c) soft_mm contributors. All rights reserved.
"""soft_mm.apis.attention_maps: the query's attention rows, per SOFT stage
and head, taken from the blocks the backbone really ran, and the picture."""
import cv2
import numpy as np
import pytest
import torch

from soft_mm.apis.attention_maps import (query_token, render_attention_grid,
                                         soft_attention_maps)
from soft_mm.models.backbones.soft import SOFT

ARCH = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4],
            depths=[1, 2, 2, 1], sr_ratios=[4, 2, 1])


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    model = SOFT(arch=ARCH, attn_impl='reference')
    model.init_weights()
    return model.eval()


def layer_inputs(backbone, image, block):
    """The input of block ``block`` of each SOFT stage, by independent
    hooks on a separate forward."""
    seen = {}
    handles = [
        stage[block].attn.register_forward_pre_hook(
            lambda mod, args, i=i: seen.__setitem__(i, args))
        for i, stage in enumerate(backbone.stages[:3])
    ]
    with torch.no_grad():
        backbone(image)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize('block', [0, -1])
def test_maps_are_the_query_rows_of_each_stage(backbone, block):
    image = torch.randn(1, 3, 64, 96)
    query = (0.3, 0.9)
    maps = soft_attention_maps(backbone, image, query, block=block)
    # Only the SOFT stages (the class-token stage is softmax attention).
    assert [m.stage for m in maps] == [0, 1, 2]
    seen = layer_inputs(backbone, image, block)
    for amap, heads, shape in zip(maps, ARCH['num_heads'],
                                  [(16, 24), (8, 12), (4, 6)]):
        stage = backbone.stages[amap.stage]
        assert amap.block == block % len(stage)
        assert amap.hw_shape == shape
        row, col = amap.query_token
        assert (row, col) == (int(0.3 * shape[0]), int(0.9 * shape[1]))
        x, hw = seen[amap.stage]
        rows = stage[block].attn.attention_rows(x, hw, range(x.shape[1]))
        assert amap.weights.shape == (heads, *shape)
        torch.testing.assert_close(
            amap.weights.flatten(1), rows[0, :, row * shape[1] + col])


def test_query_token_edges():
    assert query_token((0, 0), (4, 6)) == (0, 0)
    assert query_token((1, 1), (4, 6)) == (3, 5)
    assert query_token((0.5, 0.5), (4, 6)) == (2, 3)


@pytest.mark.parametrize('kwargs,match', [
    (dict(query=(1.5, 0.5)), r'\[0, 1\]'),
    (dict(query=(0.5, )), 'two numbers'),
    (dict(query=(0.5, 0.5), block=2), 'block 2 does not exist'),
    (dict(query=(0.5, 0.5), inputs=torch.randn(2, 3, 32, 32)),
     r'one preprocessed image'),
])
def test_bad_arguments(backbone, kwargs, match):
    kwargs.setdefault('inputs', torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=match):
        soft_attention_maps(backbone, **kwargs)


def test_not_a_soft_backbone():
    with pytest.raises(ValueError, match='SOFT backbone, got Linear'):
        soft_attention_maps(torch.nn.Linear(2, 2), torch.randn(1, 3, 8, 8),
                            (0.5, 0.5))


def test_picture_is_a_grid_of_stages_by_heads(backbone):
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    maps = soft_attention_maps(
        backbone, torch.from_numpy(image).permute(2, 0, 1)[None].float(),
        (0.5, 0.5))
    picture = render_attention_grid(image, maps, (0.5, 0.5), cell=48)
    # cells 48 x 32 (the image's aspect), a 18 px label band per row; the
    # image, then up to 3 heads.
    assert picture.shape == (3 * (32 + 18), 4 * 48, 3)
    assert picture.dtype == np.uint8
    # Stage 1 has one head: the rest of its row stays blank.
    assert (picture[18:50, 96:] == 255).all()
    assert not (picture[18:50, 48:96] == 255).all()
    # Column 0 is the image itself (nearest-resized), the query marked.
    base = cv2.resize(image, (48, 32), interpolation=cv2.INTER_NEAREST)
    differs = (picture[18:50, :48] != base).any(-1)
    assert 0 < differs.sum() < 0.1 * differs.size
