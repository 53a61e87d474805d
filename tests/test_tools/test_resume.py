# Copyright (c) soft_mm contributors. All rights reserved.
"""Interrupted runs and ``--resume``: a SIGKILL (no chance to save) resumes
from the last epoch checkpoint; a preemption signal in the middle of an
epoch saves a checkpoint from which ``--resume`` ends bit-identical to an
uninterrupted run, on one process and on two gloo processes signalled
through the launcher; and the cases around it (before the first
iteration, during validation, a second signal, the grace time, SLURM
requeue, another layout on resume)."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import soft_mm  # noqa: F401  (weights_only loading of mmengine checkpoints)
from tool_utils import DIGITS_CFG, ROOT, read_scalars

# A hook that signals at a chosen point, as a scheduler would: its own
# process, or (rank 0) the launcher, which passes it on to every worker.
SIGNAL_HOOK = '''
import os
import signal
import subprocess
import time

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _signal():
    target = (os.getppid() if os.environ.get('SOFT_MM_TEST_SIGNAL_PARENT')
              else os.getpid())
    signum = getattr(signal, os.environ.get('SOFT_MM_TEST_SIGNAL',
                                            'SIGTERM'))
    for _ in range(int(os.environ.get('SOFT_MM_TEST_SIGNAL_TIMES', 1))):
        if os.environ.get('SOFT_MM_TEST_SIGNAL_GROUP'):
            # As SLURM does: every process of the job, loader workers too,
            # from a process of its own (the workers ignore their parent's
            # signals only when it is not the parent that sends them).
            subprocess.run(['kill', '-s', signal.Signals(signum).name[3:],
                            '--', f'-{os.getpgrp()}'])
        else:
            os.kill(target, signum)
    time.sleep(float(os.environ.get('SOFT_MM_TEST_SLOW_ITER', 0)))


@HOOKS.register_module()
class SignalHook(Hook):
    priority = 'VERY_HIGH'

    def _at(self, where):
        return os.environ.get('SOFT_MM_TEST_SIGNAL_AT', '') == where

    def before_train(self, runner):
        if self._at('start'):
            _signal()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._at(str(runner.iter + 1)) and get_rank() == 0:
            _signal()

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if self._at(f'val{runner.epoch}') and batch_idx == 1:
            _signal()
'''

# 128 training images in batches of 32: 4 iterations per epoch on one
# process, 2 on two; 2 epochs.
CONFIG = f'''
_base_ = {DIGITS_CFG!r}
custom_imports = dict(
    imports=['soft_mm', 'soft_mm.engine', 'signal_hook'],
    allow_failed_imports=False)
model = dict(backbone=dict(drop_path_rate=0.1))
train_dataloader = dict(batch_size=32, dataset=dict(indices=128))
val_dataloader = dict(batch_size=16, dataset=dict(indices=64))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1, by_epoch=True, begin=1, end=2,
         eta_min=1e-5, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=2)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(max_keep_ckpts=3, save_best=None))
custom_hooks = [
    dict(type='EMAHook', momentum=0.05, priority='ABOVE_NORMAL'),
    dict(type='RNGStateHook'),
    dict(type='StopOnInvalidLossHook'),
    dict(type='SignalHook'),
]
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('preemption')
    (tmp / 'signal_hook.py').write_text(SIGNAL_HOOK)
    (tmp / 'cfg.py').write_text(CONFIG)
    return tmp


def run(setup, work_dir, *args, procs=1, port=29600, **env):
    """tools/train.py (or dist_train.sh with ``procs`` > 1); returns the
    completed process."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [ROOT, str(setup), os.environ.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1',  # same thread count, same float sums
        PORT=str(port),
        **{f'SOFT_MM_TEST_{k.upper()}': str(v) for k, v in env.items()})
    cfg = str(setup / 'cfg.py')
    if procs == 1:
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg]
    else:
        cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), cfg,
               str(procs)]
    # Its own process group: a signal to the group stays inside the run.
    return subprocess.run(cmd + ['--work-dir', str(work_dir), *args],
                          env=env, capture_output=True, text=True,
                          timeout=900, start_new_session=True)


def load(path):
    return torch.load(path, weights_only=True)


def assert_bit_identical(a, b):
    """Weights, EMA weights, optimizer moments and schedulers, exactly."""
    a, b = load(a), load(b)
    for key in ('state_dict', 'ema_state_dict'):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name}'
    for sa, sb in zip(a['optimizer']['state'].values(),
                      b['optimizer']['state'].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in ('exp_avg',
                                                       'exp_avg_sq'))
    assert a['param_schedulers'] == b['param_schedulers']


def resume_as_uninterrupted(setup, work_dir, uninterrupted):
    """``--resume`` in ``work_dir``: steps 1-8 logged once each (consumed
    batches skipped, not re-trained), the uninterrupted run's losses and
    final state bit for bit. Returns the resumed run's log."""
    proc = run(setup, work_dir, '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [s for s, _ in losses(work_dir)] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert losses(work_dir) == losses(uninterrupted)
    assert_bit_identical(uninterrupted / 'epoch_2.pth',
                         work_dir / 'epoch_2.pth')
    return proc.stdout + proc.stderr


def losses(work_dir):
    return [(r['step'], r['loss']) for r in read_scalars(work_dir)
            if 'loss' in r]


@pytest.fixture(scope='module')
def uninterrupted(setup):
    work_dir = setup / 'full'
    proc = run(setup, work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir


def test_sigkill_then_resume_from_the_epoch_checkpoint(
        setup, uninterrupted, tmp_path):
    """No handler, no save, like a node failure or the OOM killer: the run
    resumes from the last epoch checkpoint and still ends exactly where an
    uninterrupted run does (RNGStateHook restores the random streams)."""
    proc = run(setup, tmp_path, signal_at=6, signal='SIGKILL')
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-3000:])
    assert (tmp_path / 'epoch_1.pth').exists()
    assert not list(tmp_path.glob('iter_*.pth'))
    ckpt = load(tmp_path / 'epoch_1.pth')
    assert {'rng_states', 'ema_state_dict', 'optimizer',
            'param_schedulers'} <= set(ckpt)
    proc = run(setup, tmp_path, '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1, iter: 4' in log, log[-3000:]
    assert 'RNGStateHook: restored the RNG state' in log
    assert_bit_identical(uninterrupted / 'epoch_2.pth',
                         tmp_path / 'epoch_2.pth')
    # The logged losses of epoch 2 and the final validation agree too.
    assert losses(tmp_path)[-4:] == losses(uninterrupted)[-4:]
    acc = [[r['accuracy/top1'] for r in read_scalars(d)
            if 'accuracy/top1' in r][-1] for d in (tmp_path, uninterrupted)]
    assert acc[0] == acc[1]


def test_sigterm_mid_epoch_then_resume_is_bit_identical(setup, uninterrupted):
    work_dir = setup / 'one'
    # Iteration 6 of 8: the second of epoch 2's four batches.
    proc = run(setup, work_dir, signal_at=6)
    assert proc.returncode == 75, proc.stderr[-3000:]
    assert 'PreemptionHook: SIGTERM after iteration 6: saved' in proc.stdout
    ckpt = load(work_dir / 'iter_6.pth')
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 6
    assert ckpt['meta']['preemption'] == dict(
        signal='SIGTERM', world_size=1, batch_size=32, batch_in_epoch=2,
        batches_per_epoch=4)
    assert len(ckpt['rng_states']) == 1 and 'ema_state_dict' in ckpt
    assert (work_dir / 'last_checkpoint').read_text() == str(
        work_dir / 'iter_6.pth')
    assert not (work_dir / 'epoch_2.pth').exists()

    log = resume_as_uninterrupted(setup, work_dir, uninterrupted)
    assert 'resumed epoch: 1, iter: 6' in log


def test_signal_after_an_epochs_last_batch_resumes_at_the_next_epoch(
        setup, uninterrupted, tmp_path):
    """Saved after batch 4 of 4: the resumed run goes on with epoch 2 (it
    trained epoch 1 a second time before)."""
    proc = run(setup, tmp_path, signal_at=4)
    assert proc.returncode == 75, proc.stderr[-3000:]
    meta = load(tmp_path / 'iter_4.pth')['meta']
    assert (meta['epoch'], meta['preemption']['batch_in_epoch']) == (0, 4)
    resume_as_uninterrupted(setup, tmp_path, uninterrupted)


def test_epoch_checkpoint_resumes_whole_epochs_in_another_layout(
        setup, uninterrupted, tmp_path):
    """An epoch boundary may continue with another batch size: epoch 2 is
    trained whole, 3 batches of 48 (``iter - epoch * len(dataloader)`` =
    4 - 3 said one batch was done, and that batch was skipped)."""
    shutil.copy(uninterrupted / 'epoch_1.pth', tmp_path / 'epoch_1.pth')
    proc = run(setup, tmp_path, '--resume', str(tmp_path / 'epoch_1.pth'),
               '--cfg-options', 'train_dataloader.batch_size=48')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 4' in proc.stdout + proc.stderr
    assert [s for s, _ in losses(tmp_path)] == [5, 6, 7]
    assert load(tmp_path / 'epoch_2.pth')['meta']['iter'] == 7


def test_signal_to_every_process_with_loader_workers(setup, tmp_path):
    """SIGTERM to the whole process group (a scheduler's way), loader
    workers included: they ignore it, the main process saves and exits
    with 75 (a worker killed by it failed the run before), and the run
    resumes to its end."""
    workers = ['--cfg-options', 'train_dataloader.num_workers=2',
               'val_dataloader.num_workers=2']
    proc = run(setup, tmp_path, *workers, signal_at=6, signal_group=1)
    assert proc.returncode == 75, proc.stderr[-3000:]
    assert 'SIGTERM after iteration 6: saved' in proc.stdout
    assert 'killed by signal' not in proc.stderr
    assert proc.stderr.count('PreemptionHook: got SIGTERM') == 1
    proc = run(setup, tmp_path, '--resume', *workers)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [s for s, _ in losses(tmp_path)] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_two_processes_signalled_through_the_launcher(setup, tmp_path):
    full, broken = tmp_path / 'full', tmp_path / 'broken'
    proc = run(setup, full, procs=2, port=29621)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # SIGTERM to torchrun during iteration 3 (epoch 2, batch 1 of 2):
    # torchrun passes it on to both workers, which agree on the iteration.
    proc = run(setup, broken, procs=2, port=29622, signal_at=3,
               signal_parent=1)
    assert proc.returncode != 0  # the launcher reports the signal
    meta = load(broken / 'iter_3.pth')['meta']
    assert meta['preemption']['world_size'] == 2
    assert meta['preemption']['batch_in_epoch'] == 1
    assert len(load(broken / 'iter_3.pth')['rng_states']) == 2
    # Another layout cannot reproduce the rest of the epoch: refused.
    proc = run(setup, broken, '--resume')
    assert proc.returncode == 1
    assert 'saved in the middle of epoch 2 (1 of 2 batches done) by 2 ' \
        'process(es) x 32 images, but this run has 1 x 32' in proc.stderr
    proc = run(setup, broken, '--resume', procs=2, port=29623)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_bit_identical(full / 'epoch_2.pth', broken / 'epoch_2.pth')


def test_signal_before_the_first_iteration_saves_nothing(setup, tmp_path):
    proc = run(setup, tmp_path, signal_at='start')
    assert proc.returncode == 75, proc.stderr[-3000:]
    assert 'before the first iteration: nothing new saved' in proc.stdout
    assert not list(tmp_path.glob('*.pth'))


def test_signal_during_validation_stops_at_the_epoch(
        setup, uninterrupted, tmp_path):
    proc = run(setup, tmp_path, signal_at='val1')
    assert proc.returncode == 75, proc.stderr[-3000:]
    assert 'during the validation after epoch 1' in proc.stdout
    meta = load(tmp_path / 'iter_4.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (1, 4)
    assert meta['preemption']['batch_in_epoch'] == 0
    # An epoch boundary: the training resumes exactly (that validation is
    # the only thing lost).
    proc = run(setup, tmp_path, '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_bit_identical(uninterrupted / 'epoch_2.pth',
                         tmp_path / 'epoch_2.pth')


def test_second_signal_and_grace_time_exit_at_once(setup, uninterrupted,
                                                   tmp_path):
    proc = run(setup, tmp_path / 'twice', signal_at=6, signal_times=2)
    assert proc.returncode == 128 + 15, proc.stderr[-3000:]
    assert 'a second signal; exiting now' in proc.stderr
    assert not (tmp_path / 'twice' / 'iter_6.pth').exists()
    # What was saved before is whole.
    assert load(tmp_path / 'twice' / 'epoch_1.pth')['meta']['epoch'] == 1

    # An iteration that takes 20 s after the signal: the grace time (1 s)
    # ends the process before the save would start.
    slow = tmp_path / 'slow.py'
    slow.write_text(textwrap.dedent(f'''
        _base_ = {str(setup / 'cfg.py')!r}
        custom_hooks = [
            dict(type='RNGStateHook'),
            dict(type='SignalHook'),
            dict(type='PreemptionHook', grace_seconds=1),
        ]
        '''))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, str(setup), os.environ.get('PYTHONPATH', '')]),
        SOFT_MM_TEST_SIGNAL_AT='6', SOFT_MM_TEST_SLOW_ITER='20')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'), str(slow),
         '--work-dir', str(tmp_path / 'slow')], env=env,
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 128 + 15, proc.stderr[-3000:]
    assert 'no checkpoint 1 s after the signal' in proc.stderr


def test_requeue_on_slurm(setup, tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    calls = tmp_path / 'scontrol.calls'
    (bin_dir / 'scontrol').write_text(textwrap.dedent(f'''\
        #!/bin/sh
        echo "$@" >> {calls}
        '''))
    (bin_dir / 'scontrol').chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
               SLURM_JOB_ID='4242',
               PYTHONPATH=os.pathsep.join(
                   [ROOT, str(setup), os.environ.get('PYTHONPATH', '')]),
               SOFT_MM_TEST_SIGNAL_AT='2')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'),
         str(setup / 'cfg.py'), '--work-dir', str(tmp_path / 'run'),
         '--requeue'], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 75, proc.stderr[-3000:]
    assert calls.read_text().split() == ['requeue', '4242']
    assert 'requeued SLURM job 4242' in proc.stdout
