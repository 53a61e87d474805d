# Copyright (c) soft_mm contributors. All rights reserved.
"""The main job, shortened: tools/train.py learns digits, tools/test.py
reproduces its validation accuracy, --resume continues."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tool_utils import DIGITS_CFG as CONFIG
from tool_utils import ROOT, read_scalars


def run_tool(tool, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool),
                           *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two epochs of the digits config (about a minute on 2 cores)."""
    work_dir = str(tmp_path_factory.mktemp('digits'))
    run_tool('train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_epochs=2', 'param_scheduler.1.T_max=1',
             'param_scheduler.1.end=2', 'default_hooks.logger.interval=5')
    return work_dir


def test_training_learns(trained):
    records = read_scalars(trained)
    losses = [r['loss'] for r in records if 'loss' in r]
    accs = [r['accuracy/top1'] for r in records if 'accuracy/top1' in r]
    assert len(losses) >= 8 and len(accs) == 2
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, losses
    assert accs[-1] > 50, accs  # chance is 10 %
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert osp.exists(osp.join(trained, name))


def test_checkpoint_loads_safely(trained):
    # weights_only=True: no arbitrary unpickling of our own checkpoints.
    ckpt = torch.load(osp.join(trained, 'epoch_2.pth'), weights_only=True)
    assert {'state_dict', 'optimizer', 'message_hub', 'meta'} <= set(ckpt)


def test_test_tool_reproduces_val_accuracy(trained, tmp_path):
    val_acc = [r['accuracy/top1'] for r in read_scalars(trained)
               if 'accuracy/top1' in r][-1]
    out = str(tmp_path / 'metrics.json')
    run_tool('test.py', CONFIG, osp.join(trained, 'epoch_2.pth'),
             '--work-dir', str(tmp_path), '--out', out, '--out-item',
             'metrics')
    with open(out) as f:
        metrics = json.load(f)
    assert metrics['accuracy/top1'] == pytest.approx(val_acc, abs=1e-4)


def test_resume_continues_from_last_checkpoint(trained):
    run_tool('train.py', CONFIG, '--work-dir', trained, '--resume',
             '--cfg-options', 'train_cfg.max_epochs=3',
             'param_scheduler.1.T_max=2', 'param_scheduler.1.end=3',
             'default_hooks.logger.interval=5')
    assert osp.exists(osp.join(trained, 'epoch_3.pth'))
    ckpt = torch.load(osp.join(trained, 'epoch_3.pth'), weights_only=True)
    assert ckpt['meta']['epoch'] == 3
    # The resumed run trained exactly one more epoch.
    accs = [r for r in read_scalars(trained) if 'accuracy/top1' in r]
    assert [r['step'] for r in accs] == [1, 2, 3]


def test_test_tool_rejects_missing_checkpoint(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([
        sys.executable, osp.join(ROOT, 'tools', 'test.py'), CONFIG,
        str(tmp_path / 'nope.pth')
    ], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'nope.pth' in proc.stderr
