# Copyright (c) soft_mm contributors. All rights reserved.
"""tools/dist_train.sh and tools/dist_test.sh with 2 processes on the CPU.

mmengine 0.10's pytorch launcher calls ``torch.cuda.set_device`` and fails
without a GPU; soft_mm.runner.setup_distributed initialises gloo instead.
Here two torchrun processes train one model on the digits config (shortened
to two epochs of 2 x 64 images): one checkpoint, written once, whose validation
accuracy covers the whole validation split, and the model learns as a
single-process run does (loss falls, accuracy above chance).
"""
import json
import os
import os.path as osp
import pickle
import socket
import subprocess

import pytest

from tool_utils import DIGITS_CFG as CONFIG
from tool_utils import ROOT

NUM_VAL = 359  # Digits(split='test')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_script(script, *args):
    env = dict(os.environ, PORT=str(free_port()), OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', script), *args],
                          env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    """The digits config with mmengine's SyncBuffersHook.

    Each rank updates its own BatchNorm running statistics (DDP broadcasts
    rank 0's buffers only at the start of a training forward), so without
    averaging them after each epoch the ranks validate slightly different
    models, none of which is exactly the saved one (rank 0's). The ImageNet
    configs have the hook; here it is added for the same reason.
    """
    path = tmp_path_factory.mktemp('cfg') / 'digits_sync.py'
    path.write_text(f'_base_ = {CONFIG!r}\n'
                    "custom_hooks = [dict(type='SyncBuffersHook')]\n")
    return str(path)


@pytest.fixture(scope='module')
def dist_trained(tmp_path_factory, config):
    work_dir = tmp_path_factory.mktemp('dist')
    log = run_script(
        'dist_train.sh', config, '2', '--work-dir', str(work_dir),
        '--cfg-options', 'train_dataloader.dataset.indices=256',
        'train_cfg.max_epochs=2', 'param_scheduler.1.T_max=1',
        'param_scheduler.1.end=2', 'default_hooks.logger.interval=1')
    return work_dir, log


def scalars(work_dir):
    (run, ) = [d for d in os.listdir(work_dir) if d[:8].isdigit()]
    with open(osp.join(work_dir, run, 'vis_data', 'scalars.json')) as f:
        return [json.loads(line) for line in f]


def test_two_ranks_train_one_model(dist_trained):
    work_dir, log = dist_trained
    # Both processes joined one gloo group of size 2 ...
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    # ... and rank 0 alone wrote the work dir: one run folder, one of each
    # checkpoint.
    runs = [d for d in os.listdir(work_dir) if d[:8].isdigit()]
    assert len(runs) == 1, os.listdir(work_dir)
    ckpts = sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))
    assert ckpts == ['best_accuracy_top1_epoch_2.pth', 'epoch_1.pth',
                     'epoch_2.pth'], ckpts
    # 256 images / 2 ranks / 64 per rank = 2 steps per epoch: the data was
    # split between the ranks, not duplicated.
    records = scalars(work_dir)
    steps = [(r['epoch'], r['iter']) for r in records if 'loss' in r]
    assert steps == [(1, 1), (1, 2), (2, 3), (2, 4)], steps


def test_learns_like_single_process(dist_trained):
    work_dir, _ = dist_trained
    records = scalars(work_dir)
    losses = [r['loss'] for r in records if 'loss' in r]
    accs = [r['accuracy/top1'] for r in records if 'accuracy/top1' in r]
    assert len(losses) == 4 and len(accs) == 2
    assert losses[-1] < losses[0], losses
    assert accs[-1] > 20, accs  # chance is 10 %


def test_dist_test_aggregates_all_ranks(dist_trained, config, tmp_path):
    work_dir, _ = dist_trained
    val_acc = [r['accuracy/top1'] for r in scalars(work_dir)
               if 'accuracy/top1' in r][-1]
    out = tmp_path / 'preds.pkl'
    log = run_script('dist_test.sh', config,
                     str(work_dir / 'epoch_2.pth'), '2', '--work-dir',
                     str(tmp_path), '--out', str(out))
    assert 'accuracy/top1' in log
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    # Every validation image once (the sampler pads the last rank; the
    # evaluator drops the padding), gathered from both ranks.
    assert len(preds) == NUM_VAL
    assert sorted(p['sample_idx'] for p in preds) == list(range(NUM_VAL))
    correct = sum(int(p['pred_label'][0] == p['gt_label'][0]) for p in preds)
    # The accuracy logged during distributed training is over all of them.
    assert 100 * correct / NUM_VAL == pytest.approx(val_acc, abs=1e-3)


def test_dist_scripts_reject_bad_arguments(tmp_path):
    for args in (['dist_train.sh', 'no/such/config.py', '2'],
                 ['dist_train.sh', CONFIG, 'two'],
                 ['dist_test.sh', CONFIG, str(tmp_path / 'none.pth'), '2']):
        proc = subprocess.run(['bash', osp.join(ROOT, 'tools', args[0]),
                               *args[1:]], capture_output=True, text=True)
        assert proc.returncode == 2
        assert args[1] in proc.stderr or args[-1] in proc.stderr or \
            'none.pth' in proc.stderr, proc.stderr
