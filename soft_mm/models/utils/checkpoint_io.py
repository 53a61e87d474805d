# Copyright (c) soft_mm contributors. All rights reserved.
"""Safe checkpoint reading and strict weight loading for soft_mm's tools.

Everything here unpickles with ``torch.load(weights_only=True)``: a file can
hold tensors, containers and plain numbers, never code. The one extra type
allowed (only while reading) is ``argparse.Namespace``, which timm-based
training scripts (the official SOFT code among them) store under ``'args'``;
its contents still go through the restricted unpickler.
"""
import argparse
import os
import pickle
import zipfile
from collections import OrderedDict
from typing import Dict, Iterable

import torch
import torch.nn as nn


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit; the message names the
    file and the problem in one line."""


def short_list(items: Iterable, limit: int = 8) -> str:
    """``'a, b, c (+5 more)'``: a readable excerpt of a long list."""
    items = list(items)
    text = ', '.join(str(i) for i in items[:limit])
    if len(items) > limit:
        text += f' (+{len(items) - limit} more)'
    return text


def check_file(path: str) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a readable file."""
    if not os.path.exists(path):
        raise CheckpointError(f'{path}: no such file')
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: not a regular file')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path}: the file is empty')


def safe_torch_load(path: str, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and one-line errors.

    Args:
        path (str): Checkpoint file.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object (dicts, tensors, numbers, strings).
    """
    check_file(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(
                path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is several paragraphs; keep the refused global.
        first = str(e).strip().splitlines()
        reason = next((ln for ln in first if 'global' in ln.lower()),
                      first[0] if first else 'unpickling failed')
        raise CheckpointError(
            f'{path}: refused to unpickle (weights_only=True): '
            f'{reason.strip()}') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError,
            ValueError) as e:
        msg = ' '.join(str(e).split()) or type(e).__name__
        raise CheckpointError(
            f'{path}: not a readable PyTorch checkpoint (corrupt or '
            f'truncated?): {msg[:200]}') from None


def extract_state_dict(ckpt, path: str,
                       keys=('state_dict', 'model')) -> Dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint.

    Args:
        ckpt: What :func:`safe_torch_load` returned.
        path (str): File name, for messages.
        keys (tuple[str]): Wrapper keys to look under, in order.

    Returns:
        dict: Name to tensor.
    """
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: expected a dict of tensors, got '
                              f'{type(ckpt).__name__}')
    for key in keys:
        if isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    not_tensors = [k for k, v in ckpt.items() if not torch.is_tensor(v)]
    if not_tensors:
        raise CheckpointError(f'{path}: found no state dict (looked for '
                              f'{list(keys)}); non-tensor entries: '
                              f'{short_list(not_tensors)}')
    return OrderedDict(ckpt)


def compare_state_dicts(source: Dict[str, torch.Tensor],
                        expected: Dict[str, torch.Tensor],
                        path: str,
                        what: str = 'the model') -> None:
    """Raise if ``source`` misses, adds or reshapes any key of ``expected``.

    Args:
        source (dict): Name to tensor, as read from ``path``.
        expected (dict): Name to tensor (or meta tensor) of the model.
        path (str): File name, for messages.
        what (str): How to call the model in messages.
    """
    missing = [k for k in expected if k not in source]
    unexpected = [k for k in source if k not in expected]
    mismatched = [
        f'{k} {tuple(source[k].shape)} vs {tuple(expected[k].shape)}'
        for k in expected
        if k in source and source[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys: {short_list(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: '
                        f'{short_list(unexpected)}')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches (file vs '
                        f'model): {short_list(mismatched, 4)}')
    if problems:
        raise CheckpointError(f'{path}: does not fit {what}: ' +
                              '; '.join(problems))


def load_model_weights(model: nn.Module, path: str) -> dict:
    """Load ``path`` into ``model`` strictly, or raise one clear error.

    Unlike ``mmengine.runner.load_checkpoint`` (which warns and goes on),
    a missing, extra or reshaped tensor is an error: tools that export or
    measure a model must not silently run random weights. Checkpoint
    schemes registered with mmengine (``soft-official://``,
    ``soft-mindspore://``) are understood too.

    Args:
        model (nn.Module): The model.
        path (str): Checkpoint file or scheme URL.

    Returns:
        dict: The checkpoint's ``meta`` (empty if none).
    """
    from .checkpoint_schemes import load_with_scheme
    ckpt = load_with_scheme(path)
    if ckpt is None:
        ckpt = safe_torch_load(path)
    state = extract_state_dict(ckpt, path)
    if all(k.startswith('module.') for k in state):
        state = OrderedDict((k[len('module.'):], v) for k, v in state.items())
    compare_state_dicts(state, model.state_dict(), path,
                        f'{type(model).__name__} of this config')
    model.load_state_dict(state, strict=True)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    return meta if isinstance(meta, dict) else {}
