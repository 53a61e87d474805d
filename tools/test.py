# Copyright (c) soft_mm contributors. All rights reserved.
"""Evaluate a soft_mm checkpoint with mmengine's Runner (mmpretrain's
flags)."""
import argparse
import os
import sys
from copy import deepcopy

import mmengine
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import soft_mm  # noqa: F401  (registers SOFT; safe checkpoint loading)
from soft_mm.checkpoint import CheckpointError, read_checkpoint
from soft_mm.runner import (ConfigError, check_weights_fit, default_work_dir,
                            load_config, set_dataloader_defaults,
                            setup_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a soft_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file (.pth, .safetensors, soft-official://PATH, '
        'soft-mindspore://PATH)')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load the weights that fit and warn about the rest (default: '
        'any missing, unexpected or reshaped tensor is an error)')
    parser.add_argument('--work-dir', help='the dir to save logs')
    parser.add_argument('--out', help='dump predictions (or metrics) here')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='what --out holds: the metrics or the predictions (default)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy format')
    parser.add_argument(
        '--show-dir', help='draw the predictions on the images into this dir')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--interval', type=int, default=1, help='visualise every N samples')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='display time (s)')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision inference')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloader')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation: the config\'s tta_model/tta_pipeline, '
        'else flip TTA averaging the scores')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out')
    return args


def add_flip_tta(cfg: Config) -> None:
    """Wrap the model for test-time augmentation (flip by default)."""
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
    if 'tta_pipeline' not in cfg:
        test_pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.tta_pipeline = deepcopy(test_pipeline)
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[
                dict(type='RandomFlip', prob=1.),
                dict(type='RandomFlip', prob=0.)
            ], [test_pipeline[-1]]])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def merge_args(cfg: Config, args) -> Config:
    """Merge command-line arguments into the config.

    ``--cfg-options`` win over the other flags; the dataloader defaults are
    filled in last, so that they see the options.
    """
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.show or args.show_dir is not None:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise KeyError('--show/--show-dir need a VisualizationHook in '
                           'default_hooks')
        vis.update(
            enable=True,
            show=args.show,
            wait_time=args.wait_time,
            out_dir=args.show_dir,
            interval=args.interval)
    if args.tta:
        add_flip_tta(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = default_work_dir(cfg, args.config, args.work_dir)
    set_dataloader_defaults(cfg, 'test_dataloader', not args.no_pin_memory,
                            False)
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = merge_args(load_config(args.config), args)
        # Read before the Runner is built: a wrong path fails in a second.
        ckpt = read_checkpoint(args.checkpoint)
    except (ConfigError, CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    setup_distributed(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    if not args.non_strict:
        # mmengine loads what fits and logs the rest: an accuracy of a
        # partly random model. Check every key and shape first.
        try:
            check_weights_fit(runner.model, ckpt, args.checkpoint)
        except CheckpointError as e:
            print(f'error: {e}', file=sys.stderr)
            return 1
    del ckpt
    if args.out and args.out_item in ('pred', None):
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
