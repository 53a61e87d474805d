# Copyright (c) soft_mm contributors. All rights reserved.
"""ONNX / TorchScript / torch.export of SOFT classifiers, with parity."""
import re

import numpy as np
import pytest
import torch

import soft_mm  # noqa: F401
from soft_mm.apis.deploy import TensorForward
from soft_mm.apis.inference import build_classifier
from soft_mm.runner import load_config
from tool_utils import TINY_CFG, load_script, run_main

ONNX = load_script('tools/deployment/pytorch2onnx.py')
TS = load_script('tools/deployment/pytorch2torchscript.py')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A SOFT-tiny checkpoint, a small-arch config and its checkpoint."""
    tmp = tmp_path_factory.mktemp('deploy')
    torch.manual_seed(0)
    tiny = build_classifier(load_config(TINY_CFG))
    torch.save({'state_dict': tiny.state_dict()}, tmp / 'tiny.pth')
    small_cfg = tmp / 'soft-small-test.py'
    small_cfg.write_text(
        f'_base_ = [{TINY_CFG!r}]\n'
        'model = dict(backbone=dict(arch=dict(_delete_=True, '
        'embed_dims=[32, 64, 64, 64], '
        'num_heads=[1, 2, 2, 2], depths=[1, 1, 1, 1])), '
        'head=dict(num_classes=10, in_channels=64))\n')
    small = build_classifier(load_config(str(small_cfg)))
    torch.save({'state_dict': small.state_dict()}, tmp / 'small.pth')
    return dict(tmp=tmp, tiny=tmp / 'tiny.pth', small_cfg=small_cfg,
                small=tmp / 'small.pth')


def reported_diff(out):
    return float(re.search(r'max abs diff ([0-9.e+-]+)', out)[1])


@pytest.mark.parametrize('shape,dynamic', [((224, 224), True),
                                           ((160, 224), False)])
def test_onnx_soft_tiny(files, capsys, shape, dynamic):
    import onnxruntime as ort
    out_file = files['tmp'] / f'tiny_{shape[0]}x{shape[1]}.onnx'
    args = [TINY_CFG, files['tiny'], '--shape', *shape, '--output-file',
            out_file] + (['--dynamic-batch'] if dynamic else [])
    code, out, err = run_main(ONNX, capsys, *args)
    assert code == 0, err
    assert reported_diff(out) <= 1e-4
    session = ort.InferenceSession(str(out_file),
                                   providers=['CPUExecutionProvider'])
    inp = session.get_inputs()[0]
    assert inp.shape[1:] == [3, *shape]
    assert (inp.shape[0] == 'batch') if dynamic else (inp.shape[0] == 1)
    # Independent parity check on another input (batch 3 if dynamic).
    x = torch.randn(3 if dynamic else 1, 3, *shape)
    model = TensorForward(build_classifier(
        load_config(TINY_CFG), str(files['tiny'])))
    with torch.no_grad():
        ref = model(x).numpy()
    got = session.run(None, {'input': x.numpy()})[0]
    assert got.shape == (x.shape[0], 1000)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_onnx_parity_failure_exits_nonzero(files, capsys):
    out_file = files['tmp'] / 'small.onnx'
    # A negative tolerance makes any difference, even 0, a failure.
    code, out, err = run_main(ONNX, capsys, files['small_cfg'], files['small'],
                              '--shape', 64, 96, '--output-file', out_file,
                              '--tolerance', -1)
    assert code == 1
    line, = err.strip().splitlines()
    assert str(out_file) in line and 'differs from PyTorch' in line


@pytest.mark.parametrize('method,suffix', [('trace', '.pt'),
                                           ('export', '.pt2')])
def test_torchscript_and_torch_export(files, capsys, method, suffix):
    out_file = files['tmp'] / f'small_{method}{suffix}'
    code, out, err = run_main(TS, capsys, files['small_cfg'], files['small'],
                              '--shape', 64, 96, '--method', method,
                              '--output-file', out_file)
    assert code == 0, err
    assert reported_diff(out) <= 1e-4
    loaded = (torch.jit.load(str(out_file)) if method == 'trace' else
              torch.export.load(str(out_file)).module())
    model = TensorForward(build_classifier(
        load_config(str(files['small_cfg'])), str(files['small'])))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-4, rtol=0)
    # The Newton patch used for tracing is undone afterwards.
    from soft_mm.ops import reference
    assert reference.newton_inverse.__name__ == 'newton_inverse'


@pytest.mark.parametrize('tool', ['onnx', 'torchscript'])
def test_bad_checkpoints(files, capsys, tool):
    tool = ONNX if tool == 'onnx' else TS
    # A checkpoint of another architecture.
    code, out, err = run_main(tool, capsys, TINY_CFG, files['small'],
                              '--shape', 64, 64, '--output-file',
                              files['tmp'] / 'x.bin')
    assert code == 1
    line, = err.strip().splitlines()
    assert str(files['small']) in line and 'does not fit' in line
    assert not (files['tmp'] / 'x.bin').exists()
    missing = files['tmp'] / 'missing.pth'
    code, out, err = run_main(tool, capsys, TINY_CFG, missing)
    assert code == 1
    line, = err.strip().splitlines()
    assert str(missing) in line and 'no such file' in line
