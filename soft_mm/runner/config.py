# Copyright (c) soft_mm contributors. All rights reserved.
"""Reading a config, and the defaults the tools fill in."""
import ast
import os.path as osp
from copy import deepcopy
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict


class ConfigError(ValueError):
    """A config file cannot be read; the message names the file."""


def _find_syntax_error(path: str, seen=()) -> Optional[str]:
    """``'FILE, line N: message'`` for the first file of ``path`` and its
    ``_base_`` chain that does not parse, or None."""
    if path in seen or not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        return f'{path}, line {e.lineno}: {e.msg}'
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else bases:
                found = _find_syntax_error(
                    osp.normpath(osp.join(osp.dirname(path), base)),
                    seen + (path, ))
                if found:
                    return found
    return None


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile`` plus the overrides of ``--cfg-options``.

    A syntax error names the file it is in (the config or one of its
    ``_base_`` files); mmengine's message says ``<unknown>``.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): ``key=value`` overrides as parsed by
            mmengine's ``DictAction``.

    Returns:
        Config: The config.

    Raises:
        ConfigError: The file or a base does not parse.
        FileNotFoundError: No such config.
    """
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as e:
        where = _find_syntax_error(path) or f'{path}: {e}'
        raise ConfigError(f'syntax error in config {where}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def default_work_dir(cfg: Config, config_path: str, work_dir=None) -> str:
    """``--work-dir``, else the config's, else ``work_dirs/<config name>``."""
    if work_dir is not None:
        return work_dir
    if cfg.get('work_dir') is not None:
        return cfg.work_dir
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_dataloader_defaults(cfg: Config, field: str, pin_memory: bool,
                            persistent_workers: bool) -> None:
    """Fill in mmpretrain's dataloader defaults where the config is silent.

    ``persistent_workers`` is only valid with worker processes, so it is
    turned off for ``num_workers=0`` (the CPU demo configs).
    """
    if cfg.get(field) is None:
        return
    loader = ConfigDict(
        pin_memory=pin_memory and torch.cuda.is_available(),
        collate_fn=dict(type='default_collate'))
    loader.update(deepcopy(cfg[field]))
    workers = loader.get('num_workers', 0)
    loader.setdefault('persistent_workers', persistent_workers and workers > 0)
    if workers == 0:
        loader['persistent_workers'] = False
    cfg[field] = loader


def enable_preemption(cfg: Config, requeue: bool = False) -> None:
    """Make a training config survive preemption: ``PreemptionHook`` in
    ``custom_hooks`` (unless the config has one; ``requeue`` turns its
    SLURM requeue on) and, for a plain epoch-based ``train_cfg``, the loop
    that resumes inside an epoch (``ResumableEpochBasedTrainLoop``).

    Args:
        cfg (Config): The run's config, edited in place.
        requeue (bool): Requeue the SLURM job after a preemption save.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    mine = [h for h in hooks
            if str(h.get('type', '')).split('.')[-1] == 'PreemptionHook']
    if not mine:
        mine = [ConfigDict(type='PreemptionHook')]
        hooks.append(mine[0])
    if requeue:
        mine[0]['requeue'] = True
    cfg.custom_hooks = hooks
    train_cfg = cfg.get('train_cfg')
    if train_cfg and 'type' not in train_cfg and train_cfg.get('by_epoch'):
        loop = ConfigDict(type='ResumableEpochBasedTrainLoop')
        loop.update({k: v for k, v in train_cfg.items() if k != 'by_epoch'})
        cfg.train_cfg = loop
