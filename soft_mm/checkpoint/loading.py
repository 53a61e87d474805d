# Copyright (c) soft_mm contributors. All rights reserved.
"""Strict weight loading for soft_mm's tools."""
import torch.nn as nn

from .io import (compare_state_dicts, extract_state_dict, safe_torch_load,
                 strip_module_prefix)
from .schemes import load_with_scheme


def load_checkpoint_file(path: str):
    """Read ``path``: a checkpoint scheme URL (``soft-official://``, ...)
    through its converter, any other path with :func:`safe_torch_load`.

    Args:
        path (str): Checkpoint file or scheme URL.

    Returns:
        The loaded object (for a scheme: ``{'state_dict', 'meta'}``).
    """
    ckpt = load_with_scheme(path)
    return safe_torch_load(path) if ckpt is None else ckpt


def fitting_state_dict(model: nn.Module, ckpt, path: str) -> dict:
    """The state dict inside ``ckpt`` (``module.`` stripped), after checking
    that it fits ``model`` key for key, shape for shape, dtype kind for kind.

    Args:
        model (nn.Module): The model (unwrapped).
        ckpt: The loaded checkpoint.
        path (str): File name, for messages.

    Returns:
        dict: Name to tensor.
    """
    state = strip_module_prefix(extract_state_dict(ckpt, path))
    compare_state_dicts(state, model.state_dict(), path,
                        f'{type(model).__name__} of this config')
    return state


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
    ckpt = load_checkpoint_file(path)
    model.load_state_dict(fitting_state_dict(model, ckpt, path), strict=True)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    return meta if isinstance(meta, dict) else {}
