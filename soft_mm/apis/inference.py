# Copyright (c) soft_mm contributors. All rights reserved.
"""Build an evaluation-ready classifier from a config, weights loaded
strictly, and read images with clear errors: what the demo, the
visualisation and export tools and the FLOP counter share."""
import argparse
import copy
import os.path as osp
from typing import Optional, Union

import mmcv
import numpy as np
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmpretrain.apis import ImageClassificationInferencer, get_model

from soft_mm.checkpoint import load_model_weights
from soft_mm.runner import ConfigError, load_config


def build_classifier(cfg: Union[str, Config],
                     checkpoint: Optional[str] = None,
                     attn_impl: Optional[str] = 'reference',
                     device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` with mmpretrain's ``get_model``, in eval mode,
    and load ``checkpoint`` strictly.

    ``get_model`` gives the model the config's top-level
    ``data_preprocessor`` (mean/std), its dataset meta (class names) and
    the config, as mmpretrain's inferencers expect.

    Args:
        cfg (str | Config): The config (a file is read with
            :func:`soft_mm.runner.load_config`); not modified.
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
    cfg = load_config(cfg) if isinstance(cfg, str) else copy.deepcopy(cfg)
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


class ImageError(ValueError):
    """An image file that is missing or cannot be decoded."""


def read_image(path: str) -> np.ndarray:
    """Decode ``path`` (BGR, ``(H, W, 3)`` uint8) or raise
    :class:`ImageError` naming it."""
    if osp.isdir(path):
        raise ImageError(f'{path}: is a folder, not an image file')
    if not osp.isfile(path):
        raise ImageError(f'{path}: no such image file')
    try:
        img = mmcv.imread(path)
    except Exception as e:  # decoders raise several types
        raise ImageError(f'{path}: cannot decode the image: {e}') from None
    if img is None or img.size == 0:
        raise ImageError(f'{path}: cannot decode the image (not an image, '
                         'or corrupt)')
    return img


def build_inferencer(cfg: Config,
                     checkpoint: Optional[str],
                     device: str = 'cpu') -> ImageClassificationInferencer:
    """mmpretrain's inferencer around the strictly loaded classifier (its
    preprocessor, class names and test pipeline come from ``cfg``).

    Raises:
        ConfigError: ``cfg`` has no ``test_dataloader`` (its pipeline is
            what preprocesses an image).
    """
    if 'test_dataloader' not in cfg:
        name = cfg.filename or 'the config'
        raise ConfigError(f'{name}: the config has no test_dataloader (its '
                          'test pipeline preprocesses the image)')
    model = build_classifier(cfg, checkpoint, attn_impl=None, device=device)
    return ImageClassificationInferencer(
        model, pretrained=False, device=device)


def add_image_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the tools that run a trained classifier on one
    image: ``img config checkpoint [--device] [--cfg-options]``."""
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file (with a test pipeline)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value (mmengine DictAction)')


def inferencer_from_args(
        args: argparse.Namespace) -> ImageClassificationInferencer:
    """:func:`build_inferencer` for the arguments of
    :func:`add_image_model_arguments` (the image is read first, so a bad
    image is reported before the model is built)."""
    read_image(args.img)
    cfg = load_config(args.config, args.cfg_options)
    return build_inferencer(cfg, args.checkpoint, args.device)
