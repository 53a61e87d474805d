# Copyright (c) soft_mm contributors. All rights reserved.
"""Reading configs and the defaults the tools fill in."""
import pytest
from mmengine.config import Config

from soft_mm.runner import (ConfigError, default_work_dir, enable_preemption,
                            load_config, set_dataloader_defaults)
from tool_utils import DIGITS_CFG


def test_syntax_error_names_the_base_file(tmp_path):
    base = tmp_path / 'base.py'
    base.write_text('model = dict(\ntype = 1\n')
    top = tmp_path / 'top.py'
    top.write_text("_base_ = ['./base.py']\nx = 1\n")
    with pytest.raises(ConfigError, match=rf'{base}, line \d+'):
        load_config(str(top))
    with pytest.raises(FileNotFoundError):
        load_config(str(tmp_path / 'missing.py'))


def test_cfg_options_are_merged():
    cfg = load_config(DIGITS_CFG, {'train_cfg.max_epochs': 3})
    assert cfg.train_cfg.max_epochs == 3


def test_default_work_dir():
    cfg = Config(dict())
    assert default_work_dir(cfg, 'configs/a/b_c.py') == './work_dirs/b_c'
    assert default_work_dir(cfg, 'configs/a/b_c.py', 'mine') == 'mine'
    cfg.work_dir = 'from_cfg'
    assert default_work_dir(cfg, 'configs/a/b_c.py') == 'from_cfg'


def test_dataloader_defaults_respect_the_config():
    cfg = Config(dict(train_dataloader=dict(num_workers=0, batch_size=2),
                      val_dataloader=dict(num_workers=4,
                                          persistent_workers=False)))
    set_dataloader_defaults(cfg, 'train_dataloader', True, True)
    set_dataloader_defaults(cfg, 'val_dataloader', True, True)
    set_dataloader_defaults(cfg, 'test_dataloader', True, True)  # absent
    assert cfg.train_dataloader.persistent_workers is False  # no workers
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.val_dataloader.persistent_workers is False  # the config's
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    assert 'test_dataloader' not in cfg


def test_enable_preemption():
    cfg = Config(dict(train_cfg=dict(by_epoch=True, max_epochs=3,
                                     val_interval=1),
                      custom_hooks=[dict(type='RNGStateHook')]))
    enable_preemption(cfg)
    assert cfg.train_cfg == dict(type='ResumableEpochBasedTrainLoop',
                                 max_epochs=3, val_interval=1)
    assert cfg.custom_hooks == [dict(type='RNGStateHook'),
                                dict(type='PreemptionHook')]
    # The config's own hook is kept (and told to requeue); loops with a
    # type of their own, or by iteration, are left alone.
    cfg = Config(dict(train_cfg=dict(by_epoch=False, max_iters=9),
                      custom_hooks=[dict(type='mmpretrain.PreemptionHook',
                                         grace_seconds=5)]))
    enable_preemption(cfg, requeue=True)
    assert cfg.train_cfg == dict(by_epoch=False, max_iters=9)
    assert cfg.custom_hooks == [dict(type='mmpretrain.PreemptionHook',
                                     grace_seconds=5, requeue=True)]
