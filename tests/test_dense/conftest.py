# Copyright (c) soft_mm contributors. All rights reserved.
"""Fixtures of the detection / segmentation tests: tiny COCO / ADE20K
datasets and a soft_mm classifier checkpoint, written once per session."""
from pathlib import Path

import pytest
import torch

from dense_utils import (CLS_TINY_CONFIG, require_dense_toolbox, write_ade20k,
                         write_coco)


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory) -> Path:
    require_dense_toolbox('mmdet')
    return write_coco(tmp_path_factory.mktemp('coco'))


@pytest.fixture(scope='session')
def ade_root(tmp_path_factory) -> Path:
    require_dense_toolbox('mmseg')
    return write_ade20k(tmp_path_factory.mktemp('ade'))


# ----------------------------------------------------------------- checkpoints


@pytest.fixture(scope='session')
def soft_norm_tiny_classifier(tmp_path_factory):
    """A soft_mm SOFT-Norm tiny ImageNet classifier (random weights) and
    the path of its mmengine-style checkpoint (keys ``backbone.*`` and
    ``head.*``, as saved by soft_mm's tools/train.py)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import soft_mm  # noqa: F401  registers SOFT

    torch.manual_seed(1)
    cfg = Config.fromfile(str(CLS_TINY_CONFIG))
    # The toolbox tests switch the default scope to mmdet / mmseg.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(cfg.model)
    classifier.init_weights()
    # Make the BN statistics non-trivial so that loading them is visible.
    for name, buf in classifier.named_buffers():
        if name.endswith('running_mean'):
            buf.normal_(0, 0.1)
        elif name.endswith('running_var'):
            buf.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp('ckpt') / 'soft-norm-tiny_cls.pth'
    torch.save(
        dict(state_dict=classifier.state_dict(), meta=dict(epoch=300)),
        str(path))
    return classifier.eval(), path
