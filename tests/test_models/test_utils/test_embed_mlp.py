# Copyright (c) soft_mm contributors. All rights reserved.
"""Patch embedding and the MLP."""
import pytest
import torch

from soft_mm.models.utils import ConvPatchEmbed, Mlp


@pytest.mark.parametrize('size', [(224, 224), (33, 17), (1, 1)])
def test_stem_has_stride_4_and_rounds_up(size):
    stem = ConvPatchEmbed(3, 64, mid_channels=(32, 32), strides=(2, 1, 2))
    tokens, hw = stem(torch.randn(2, 3, *size))
    want = tuple(-(-s // 4) for s in size)
    assert hw == want and tokens.shape == (2, want[0] * want[1], 64)
    assert len(stem.projection) == 3


def test_downsampler_is_one_unit():
    down = ConvPatchEmbed(64, 128, bias=False)
    tokens, hw = down(torch.randn(1, 64, 7, 8))
    assert hw == (4, 4) and tokens.shape == (1, 16, 128)
    assert down.projection[0].conv.bias is None


def test_one_stride_per_unit():
    with pytest.raises(ValueError, match='one stride per unit'):
        ConvPatchEmbed(3, 64, mid_channels=(32, ), strides=(2, ))


def test_mlp():
    mlp = Mlp(16, 40)
    x = torch.randn(3, 5, 16)
    assert mlp(x).shape == x.shape
    torch.testing.assert_close(mlp(x), mlp.fc2(mlp.act(mlp.fc1(x))))
    assert mlp.fc1.out_features == 40
