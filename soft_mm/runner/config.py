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
