# Copyright (c) soft_mm contributors. All rights reserved.
"""demo/image_demo.py: top-k output, --show-dir, and bad inputs."""
import os.path as osp
import pickle
import re

import cv2
import numpy as np
import pytest
import torch

import soft_mm  # noqa: F401
from soft_mm.apis.deploy import TensorForward
from soft_mm.apis.inference import build_classifier
from soft_mm.runner import load_config
from tool_utils import DIGITS_CFG, ROOT, load_script, run_main

CFG = DIGITS_CFG
DEMO = load_script('demo/image_demo.py')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('demo')
    torch.manual_seed(0)
    model = build_classifier(load_config(CFG))
    classes = [f'digit-{i}' for i in range(10)]
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': classes}}},
               tmp / 'digits.pth')
    img = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(
        np.uint8)
    cv2.imwrite(str(tmp / 'digit.png'), img)
    return dict(tmp=tmp, ckpt=tmp / 'digits.pth', img=tmp / 'digit.png',
                classes=classes, raw=img)


def test_topk_and_show_dir(files, capsys):
    show = files['tmp'] / 'vis'
    code, out, err = run_main(DEMO, capsys, files['img'], CFG, files['ckpt'],
                              '--topk', 3, '--show-dir', show)
    assert code == 0, err
    ranks = re.findall(r'\d\. (digit-\d) \(label (\d)\): ([0-9.]+)', out)
    assert len(ranks) == 3
    scores = [float(s) for _, _, s in ranks]
    assert scores == sorted(scores, reverse=True)
    assert all(name == f'digit-{label}' for name, label, _ in ranks)
    # The same scores as the model on the test pipeline (resize to 32x32).
    model = build_classifier(
        load_config(CFG), str(files['ckpt']), attn_impl=None)
    x = torch.from_numpy(cv2.resize(files['raw'], (32, 32),
                                    interpolation=cv2.INTER_LINEAR))
    x = x.permute(2, 0, 1)[None].float()
    with torch.no_grad():
        data = model.data_preprocessor({'inputs': x.to(torch.uint8)})
        probs = TensorForward(model)(data['inputs']).softmax(-1)[0]
    top = probs.argsort(descending=True)[:3]
    assert [int(label) for _, label, _ in ranks] == top.tolist()
    np.testing.assert_allclose(scores, probs[top].numpy(), atol=2e-4)
    vis = cv2.imread(str(show / 'digit.png'))
    assert vis is not None and vis.shape[2] == 3


def test_bad_inputs(files, capsys, tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8\xff not really a jpeg')
    other_arch = tmp_path / 'tiny1000.pth'
    model = build_classifier(load_config(
        osp.join(ROOT, 'configs', '_base_', 'models', 'soft',
                 'soft-tiny.py')))
    torch.save({'state_dict': model.state_dict()}, other_arch)
    cases = [
        ((bad, CFG, files['ckpt']), str(bad), 'cannot decode'),
        ((tmp_path / 'none.png', CFG, files['ckpt']), 'none.png',
         'no such image'),
        ((tmp_path, CFG, files['ckpt']), str(tmp_path),
         'is a folder, not an image file'),
        ((files['img'], CFG, tmp_path / 'no.pth'), 'no.pth', 'no such file'),
        ((files['img'], CFG, other_arch), str(other_arch),
         r'does not fit.*8 shape mismatches.*landmark_conv\.weight '
         r'\(32, 32, 8, 8\) vs \(32, 32, 4, 4\)'),
    ]
    for args, name, match in cases:
        code, out, err = run_main(DEMO, capsys, *args)
        assert code == 1
        # One error line (other stderr lines may be library warnings).
        line, = [ln for ln in err.splitlines() if ln.startswith('error:')]
        assert name in line and re.search(match, line), line
    for topk in ('0', '-1'):  # [:-1] printed every class but one
        with pytest.raises(SystemExit):
            DEMO.parse_args([str(files['img']), CFG, str(files['ckpt']),
                             '--topk', topk])
        assert '--topk must be >= 1' in capsys.readouterr().err


def test_demo_agrees_with_the_test_tool(files, capsys, tmp_path):
    """The demo preprocesses as the config does (its data_preprocessor's
    mean/std): on held-out digits written as PNG files it gives the labels
    and scores that tools/test.py gives on the same images."""
    from soft_mm.datasets import Digits
    n = 12
    dataset = Digits(split='test', indices=n)
    pred_file = tmp_path / 'preds.pkl'
    code, _, err = run_main(
        load_script('tools/test.py'), capsys, CFG, files['ckpt'],
        '--work-dir', tmp_path, '--out', pred_file, '--cfg-options',
        f'test_dataloader.dataset.indices={n}')
    assert code == 0, err
    with open(pred_file, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == n
    for i, pred in enumerate(preds):
        png = tmp_path / f'digit_{i}.png'
        cv2.imwrite(str(png), dataset.get_data_info(i)['img'])
        code, out, err = run_main(DEMO, capsys, png, CFG, files['ckpt'],
                                  '--topk', 1)
        assert code == 0, err
        (_, label, score), = re.findall(
            r'1\. (\S+) \(label (\d)\): ([0-9.]+)', out)
        assert int(label) == int(pred['pred_label'])
        assert float(score) == pytest.approx(
            float(pred['pred_score'][int(label)]), abs=1e-4)
