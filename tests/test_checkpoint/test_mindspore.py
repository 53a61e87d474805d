# Copyright (c) soft_mm contributors. All rights reserved.
"""The seed's MindSpore checkpoint layout (the fixtures encode the
protobuf by hand, independent of the reader under test)."""
import math

from soft_fixtures import TINY, mindspore_state


def test_mindspore_tiny_layout_matches_the_seed():
    ms = mindspore_state(TINY, num_classes=1000)
    # The seed's SOFT-tiny .ckpt has 225 tensors and 13.53 M values.
    assert len(ms) == 225
    assert math.isclose(sum(v.numel() for v in ms.values()) / 1e6, 13.53,
                        abs_tol=0.005)
