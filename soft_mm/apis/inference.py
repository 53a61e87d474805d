# Copyright (c) soft_mm contributors. All rights reserved.
"""Build an evaluation-ready classifier from a config, weights loaded
strictly: what the demo, the export tools and the FLOP counter share."""
import ast
import copy
import os.path as osp
from typing import Optional

import torch.nn as nn
from mmengine.config import Config
from mmpretrain.apis import get_model

from soft_mm.checkpoint import load_model_weights


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


def build_classifier(cfg: Config,
                     checkpoint: Optional[str] = None,
                     attn_impl: Optional[str] = 'reference',
                     device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` with mmpretrain's ``get_model``, in eval mode,
    and load ``checkpoint`` strictly.

    ``get_model`` gives the model the config's top-level
    ``data_preprocessor`` (mean/std), its dataset meta (class names) and
    the config, as mmpretrain's inferencers expect.

    Args:
        cfg (Config): The config; not modified.
        checkpoint (str, optional): Weights (file or ``soft-official://`` /
            ``soft-mindspore://`` URL). None keeps the random init.
        attn_impl (str, optional): Force this SOFT attention implementation
            (``'reference'`` traces and exports as plain ops). None keeps
            the config's. Defaults to ``'reference'``.
        device (str): Device. Defaults to ``'cpu'``.

    Returns:
        nn.Module: The classifier; the checkpoint's ``meta`` (or ``{}``) is
        kept as ``model.checkpoint_meta``.
    """
    cfg = copy.deepcopy(cfg)
    # Weights come from `checkpoint`, never from a pretrained init.
    cfg.model.pop('pretrained', None)
    backbone = cfg.model.get('backbone', {})
    if attn_impl is not None and backbone.get('type') == 'SOFT':
        backbone['attn_impl'] = attn_impl
    if backbone.get('init_cfg') and isinstance(backbone['init_cfg'], dict) \
            and backbone['init_cfg'].get('type') == 'Pretrained':
        backbone.pop('init_cfg')
    model = get_model(cfg, pretrained=False)
    if checkpoint is not None:
        model.checkpoint_meta = load_model_weights(model, checkpoint)
        dataset_meta = model.checkpoint_meta.get('dataset_meta')
        if isinstance(dataset_meta, dict) and dataset_meta.get('classes'):
            model._dataset_meta = dataset_meta
    else:
        model.init_weights()
        model.checkpoint_meta = {}
    return model.to(device).eval()
