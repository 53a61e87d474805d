# Copyright (c) soft_mm contributors. All rights reserved.
"""Train a soft_mm model with mmengine's Runner (mmpretrain's flags)."""
import argparse
import os
import sys

from mmengine.config import Config, DictAction
from mmengine.dist import get_world_size
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import soft_mm  # noqa: F401  (registers SOFT; safe checkpoint loading)
from soft_mm.checkpoint import CheckpointError
from soft_mm.runner import (ConfigError, WorkDirBusyError, WorkDirLock,
                            check_resumable, default_work_dir,
                            enable_preemption, is_main_process_by_env,
                            load_config, resolve_resume,
                            set_dataloader_defaults, setup_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a soft_mm model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by actual / base batch size (auto_scale_lr)')
    parser.add_argument(
        '--requeue',
        action='store_true',
        help='on SLURM, requeue the job after saving on a preemption '
        'signal (scontrol requeue $SLURM_JOB_ID)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy format')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args) -> Config:
    """Merge command-line arguments into the config.

    ``--cfg-options`` win over the other flags; the dataloader defaults are
    filled in last, so that they see the options (``num_workers=0`` turns
    ``persistent_workers`` off).
    """
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = default_work_dir(cfg, args.config, args.work_dir)
    # Save on SIGTERM / SIGUSR1 and resume inside the epoch.
    enable_preemption(cfg, args.requeue)

    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        set_dataloader_defaults(cfg, field, not args.no_pin_memory,
                                not args.no_persistent_workers)
    return cfg


def build_runner(cfg: Config):
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def resume_target(cfg: Config) -> str:
    """The checkpoint this run resumes from, or None."""
    if not cfg.get('resume'):
        return None
    return resolve_resume(cfg.work_dir, cfg.get('load_from') or 'auto')


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = merge_args(load_config(args.config), args)
        # One training per work dir, until this process ends.
        lock = (WorkDirLock(cfg.work_dir).acquire()
                if is_main_process_by_env() else None)
    except (ConfigError, WorkDirBusyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    try:
        setup_distributed(cfg, args.launcher)
        runner = build_runner(cfg)
        resume_from = resume_target(cfg)
        if resume_from is not None:
            # mmengine would warn and train random tensors on (or fail on a
            # weights-only file with KeyError: 'epoch').
            try:
                check_resumable(runner.model, resume_from, get_world_size(),
                                cfg.train_dataloader.get('batch_size'))
            except CheckpointError as e:
                print(f'error: --resume: {e}', file=sys.stderr)
                return 1
        try:
            runner.train()
        except CheckpointError as e:  # e.g. init_cfg Pretrained that does
            # not fit: fail, never train random weights on
            print(f'error: {e}', file=sys.stderr)
            return 1
    finally:
        if lock is not None:
            lock.release()
    return 0


if __name__ == '__main__':
    sys.exit(main())
