# Copyright (c) soft_mm contributors. All rights reserved.
"""Grad-CAM of SOFT through mmpretrain's own tools/visualization/vis_cam.py
(grad-cam pinned in requirements/visualization.txt)."""
import os.path as osp
import re
import subprocess
import sys

import cv2
import mmpretrain
import numpy as np
import pytest
import torch
from mmengine.config import Config

from tool_utils import ROOT

VIS_CAM = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools',
                   'visualization', 'vis_cam.py')
RECIPE = osp.join(ROOT, 'configs', 'soft', 'soft-tiny_ft-1xb32_custom.py')


def test_grad_cam_of_soft(tmp_path):
    pytest.importorskip(
        'pytorch_grad_cam',
        reason='pip install -r requirements/visualization.txt')
    text = open(RECIPE).read()
    text = re.sub(r'^img_size = .*$', 'img_size = 64', text, flags=re.M)
    text = re.sub(r'^num_classes = .*$', 'num_classes = 3', text, flags=re.M)
    cfg_path = tmp_path / 'cfg.py'
    cfg_path.write_text(text)
    cfg = Config.fromfile(str(cfg_path))
    cfg.model.backbone.pop('init_cfg')
    from mmpretrain.models import build_classifier
    torch.manual_seed(0)
    model = build_classifier(cfg.model)
    model.init_weights()
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    img = tmp_path / 'digit.png'
    rng = np.random.default_rng(0)
    cv2.imwrite(str(img), rng.integers(0, 255, (80, 96, 3), np.uint8))
    out = tmp_path / 'cam.png'
    proc = subprocess.run(
        [sys.executable, VIS_CAM, str(img), str(cfg_path), str(ckpt),
         '--vit-like', '--save-path', str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # The norm before the last attention block: the patch tokens meet the
    # class token only in attention, after it nothing reaches them.
    assert 'backbone.stages.3.1.norm1' in proc.stdout
    cam = cv2.imread(str(out))
    assert cam is not None and cam.shape == (64, 64, 3)
