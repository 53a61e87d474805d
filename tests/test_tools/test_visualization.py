# Copyright (c) soft_mm contributors. All rights reserved.
"""Pictures of SOFT: Grad-CAM through mmpretrain's own
tools/visualization/vis_cam.py (grad-cam pinned in
requirements/visualization.txt) and soft_mm's attention viewer."""
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

from soft_mm.apis.inference import build_classifier
from soft_mm.runner import load_config
from tool_utils import DIGITS_CFG, ROOT, load_script, run_main

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


def test_attention_viewer_writes_the_grid(tmp_path, capsys):
    vis_attention = load_script('tools/visualization/vis_attention.py')
    torch.manual_seed(0)
    ckpt = tmp_path / 'digits.pth'
    torch.save({'state_dict': build_classifier(
        load_config(DIGITS_CFG)).state_dict()}, ckpt)
    img = tmp_path / 'digit.png'
    cv2.imwrite(str(img), np.random.default_rng(0).integers(
        0, 255, (40, 30, 3), np.uint8))
    out = tmp_path / 'sub' / 'attn.png'
    code, stdout, err = run_main(vis_attention, capsys, img, DIGITS_CFG, ckpt,
                                 '--query', 0.9, 0.1, '--out', out,
                                 '--cell', 64)
    assert code == 0, err
    # The digits model sees 32x32: stages of 8x8, 4x4, 2x2 tokens.
    assert 'stage 1 block 1: 8x8 tokens, query token (7, 0), 2 heads' in stdout
    assert 'stage 2 block 2: 4x4 tokens, query token (3, 0), 4 heads' in stdout
    assert 'stage 3 block 3: 2x2 tokens, query token (1, 0), 10 heads' \
        in stdout
    picture = cv2.imread(str(out))
    assert picture.shape == (3 * (64 + 18), 11 * 64, 3)

    bad = [(('--query', 2, 0.5), r'\[0, 1\]'),
           (('--block', 5), 'block 5 does not exist'),
           (('--out', tmp_path / 'x.png', '--query', 'a', 0), None)]
    for extra, match in bad:
        if match is None:  # argparse rejects a non-number itself
            with pytest.raises(SystemExit):
                vis_attention.main([str(a) for a in (img, DIGITS_CFG, ckpt,
                                                     *extra)])
            continue
        code, _, err = run_main(vis_attention, capsys, img, DIGITS_CFG, ckpt,
                                *extra, '--out', tmp_path / 'bad.png')
        assert code == 1 and re.search('error: .*' + match, err), err
    assert not (tmp_path / 'bad.png').exists()
    code, _, err = run_main(vis_attention, capsys, tmp_path / 'none.png',
                            DIGITS_CFG, ckpt)
    assert code == 1 and 'no such image file' in err
