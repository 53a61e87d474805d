# Copyright (c) soft_mm contributors. All rights reserved.
"""SIGKILL a training run mid-epoch, resume it, and get the uninterrupted
run's result: same weights, optimizer, scheduler, EMA and RNG streams.

The digits config, shortened (64 training images in batches of 32, 2
epochs of 2 steps, 64 validation images),
with drop path and an EMA so that the torch RNG and the EMA state matter.
"""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

import soft_mm  # noqa: F401  (weights_only loading of mmengine checkpoints)
from tool_utils import DIGITS_CFG, ROOT, read_scalars

DIGITS = DIGITS_CFG

# A hook that kills its own process with SIGKILL after a given iteration:
# no handler, no cleanup, like a node failure or the OOM killer.
KILL_HOOK = '''
import os
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class SigKillAtIterHook(Hook):

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        at = int(os.environ.get('SOFT_MM_TEST_KILL_AT', 0))
        if at and runner.iter + 1 == at:
            os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    (tmp / 'sigkill_hook.py').write_text(KILL_HOOK)
    (tmp / 'cfg.py').write_text(textwrap.dedent(f'''
        _base_ = {DIGITS!r}
        custom_imports = dict(
            imports=['soft_mm', 'soft_mm.engine', 'sigkill_hook'],
            allow_failed_imports=False)
        model = dict(backbone=dict(drop_path_rate=0.1))
        train_dataloader = dict(batch_size=32, dataset=dict(indices=64))
        val_dataloader = dict(dataset=dict(indices=64))
        test_dataloader = val_dataloader
        param_scheduler = [
            dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
                 end=1, convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', T_max=1, by_epoch=True, begin=1,
                 end=2, eta_min=1e-5, convert_to_iter_based=True),
        ]
        train_cfg = dict(max_epochs=2)
        default_hooks = dict(
            logger=dict(interval=1),
            checkpoint=dict(max_keep_ckpts=3, save_best=None))
        custom_hooks = [
            dict(type='EMAHook', momentum=0.05, priority='ABOVE_NORMAL'),
            dict(type='RNGStateHook'),
            dict(type='StopOnInvalidLossHook'),
            dict(type='SigKillAtIterHook'),
        ]
        '''))
    return tmp


def train(cfg, work_dir, *args, kill_at=0):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [ROOT, str(osp.dirname(cfg)),
             os.environ.get('PYTHONPATH', '')]),
        SOFT_MM_TEST_KILL_AT=str(kill_at),
        OMP_NUM_THREADS='1')  # same thread count, same float sums
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'), str(cfg),
         '--work-dir', str(work_dir), *args],
        env=env, capture_output=True, text=True, timeout=600)


def test_sigkill_then_resume_matches_uninterrupted(setup):
    cfg = setup / 'cfg.py'
    full, broken = setup / 'full', setup / 'broken'

    proc = train(cfg, full)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # Killed after step 3 of 4: epoch 2 is half done, epoch_1.pth is the
    # last checkpoint.
    proc = train(cfg, broken, kill_at=3)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-3000:])
    assert osp.exists(broken / 'epoch_1.pth')
    assert not osp.exists(broken / 'epoch_2.pth')
    ckpt = torch.load(broken / 'epoch_1.pth', weights_only=True)
    assert {'rng_states', 'ema_state_dict', 'optimizer',
            'param_schedulers'} <= set(ckpt)

    proc = train(cfg, broken, '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1, iter: 2' in log, log[-3000:]
    assert 'RNGStateHook: restored the RNG state' in log

    a = torch.load(full / 'epoch_2.pth', weights_only=True)
    b = torch.load(broken / 'epoch_2.pth', weights_only=True)
    # Same data order, same augmentation and drop-path draws, same
    # optimizer moments and lr: the same weights, EMA included.
    for key in ('state_dict', 'ema_state_dict'):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            torch.testing.assert_close(
                a[key][name], b[key][name], rtol=1e-5, atol=1e-6,
                msg=f'{key}.{name} differs after resume')
    exp_avg = [s['exp_avg'] for s in a['optimizer']['state'].values()]
    exp_avg_b = [s['exp_avg'] for s in b['optimizer']['state'].values()]
    for x, y in zip(exp_avg, exp_avg_b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert a['param_schedulers'] == b['param_schedulers']

    # The logged losses of epoch 2 and the final validation agree too.
    def last_epoch(records):
        loss = [r['loss'] for r in records if 'loss' in r and r['step'] > 2]
        acc = [r['accuracy/top1'] for r in records if 'accuracy/top1' in r]
        return loss[-2:], acc[-1]

    loss_a, acc_a = last_epoch(read_scalars(full))
    loss_b, acc_b = last_epoch(read_scalars(broken))
    assert loss_a == pytest.approx(loss_b, rel=1e-4)
    assert acc_a == pytest.approx(acc_b, abs=1e-6)
