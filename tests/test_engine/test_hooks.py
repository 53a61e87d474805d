# Copyright (c) soft_mm contributors. All rights reserved.
"""RNGStateHook and StopOnInvalidLossHook, driven by a stand-in runner."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS

import soft_mm  # noqa: F401  (weights_only loading of mmengine types)
from soft_mm.engine import RNGStateHook, StopOnInvalidLossHook
from soft_mm.engine.hooks.rng_state import get_rng_state, set_rng_state


def draws():
    return (random.random(), np.random.rand(3).tolist(),
            np.random.randn(), torch.rand(3).tolist())


class _Loop(BaseLoop):

    def run(self):
        pass


def fake_runner(it=8, resume=True, training=True):
    runner = SimpleNamespace(iter=it, epoch=it // 4, _resume=resume)
    runner._train_loop = _Loop(runner, []) if training else None
    return runner


def test_registered_in_mmpretrain():
    assert isinstance(HOOKS.build(dict(type='RNGStateHook')), RNGStateHook)
    assert isinstance(
        HOOKS.build(dict(type='StopOnInvalidLossHook', interval=2)),
        StopOnInvalidLossHook)


def test_get_set_roundtrip_includes_gauss_cache():
    np.random.randn()  # leaves a cached Gaussian in the legacy generator
    state = get_rng_state()
    expected = draws()
    draws()
    set_rng_state(state)
    assert draws() == expected


def test_set_rng_state_names_missing_parts():
    with pytest.raises(KeyError, match='numpy'):
        set_rng_state(dict(python=random.getstate(), torch=torch.
                           get_rng_state()))


def test_checkpoint_roundtrip_restores_streams(tmp_path):
    hook = RNGStateHook()
    runner = fake_runner()
    hook.after_train_epoch(runner)  # end of epoch: states gathered
    expected = draws()  # what the next epoch would draw
    ckpt = {'meta': {}}
    hook.before_save_checkpoint(runner, ckpt)
    torch.save(ckpt, tmp_path / 'ckpt.pth')
    # A new process: fresh streams, then resume.
    draws()
    loaded = torch.load(tmp_path / 'ckpt.pth', weights_only=True)
    new_hook = RNGStateHook()
    new_hook.after_load_checkpoint(runner, loaded)
    new_hook.before_train(runner)
    assert draws() == expected


def test_load_from_without_resume_keeps_fresh_streams():
    hook = RNGStateHook()
    runner = fake_runner()
    hook.after_train_epoch(runner)
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    fresh = get_rng_state()
    expected = draws()
    set_rng_state(fresh)
    hook.after_load_checkpoint(fake_runner(resume=False), ckpt)
    hook.before_train(runner)
    assert draws() == expected


def test_other_world_size_is_not_restored():
    hook = RNGStateHook()
    runner = fake_runner()
    ckpt = {'rng_states': [get_rng_state(), get_rng_state()]}  # 2 ranks
    draws()
    fresh = get_rng_state()
    expected = draws()
    set_rng_state(fresh)
    hook.after_load_checkpoint(runner, ckpt)
    hook.before_train(runner)  # world size 1 here: warns, leaves streams
    assert draws() == expected


def test_validation_does_not_consume_training_streams():
    hook = RNGStateHook()
    runner = fake_runner()
    state = get_rng_state()
    expected = draws()
    set_rng_state(state)
    hook.before_val(runner)
    draws()  # validation draws (e.g. a DataLoader's base seed)
    hook.after_val(runner)
    assert draws() == expected
    # Stand-alone validation/testing: nothing is saved or restored.
    hook.before_val(fake_runner(training=False))
    assert hook._val_saved is None


def test_invalid_loss_stops_with_the_step():
    hook = StopOnInvalidLossHook()
    runner = fake_runner(it=7)
    hook.after_train_iter(runner, 3, outputs=dict(loss=torch.tensor(0.5)))
    with pytest.raises(FloatingPointError, match='iteration 8, epoch 2, '
                       'batch 4'):
        hook.after_train_iter(
            runner, 3, outputs=dict(loss=torch.tensor(float('nan'))))
    with pytest.raises(FloatingPointError, match='inf'):
        hook.after_train_iter(
            runner, 3, outputs=dict(loss=torch.tensor(float('inf'))))


def test_invalid_loss_interval():
    with pytest.raises(ValueError, match='interval'):
        StopOnInvalidLossHook(interval=0)
    hook = StopOnInvalidLossHook(interval=2)
    nan = dict(loss=torch.tensor(float('nan')))
    hook.after_train_iter(fake_runner(it=0), 0, outputs=nan)  # not checked
    with pytest.raises(FloatingPointError):
        hook.after_train_iter(fake_runner(it=1), 1, outputs=nan)
