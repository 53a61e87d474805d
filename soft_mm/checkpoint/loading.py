# Copyright (c) soft_mm contributors. All rights reserved.
"""Reading checkpoints (one reader for every tool) and strict loading."""
import torch.nn as nn
from mmengine.runner import CheckpointLoader

from .io import compare_state_dicts, extract_state_dict, strip_module_prefix


def read_checkpoint(path: str):
    """Read a checkpoint the way mmengine's Runner does, through
    ``mmengine.runner.CheckpointLoader``, where importing soft_mm
    registered its readers: local files are read safely (weights only,
    ``.safetensors`` too), ``soft-official://`` / ``soft-mindspore://``
    convert the original files (:mod:`soft_mm.checkpoint.schemes`), and
    mmengine's own schemes (``https://``, ...) keep working.

    Args:
        path (str): Checkpoint file or URL.

    Returns:
        The loaded object (for a soft_mm scheme: ``{'state_dict',
        'meta'}``), tensors on the CPU.

    Raises:
        CheckpointError: Unreadable or not a checkpoint
            (``CheckpointNotFoundError``, also a ``FileNotFoundError``, for
            a missing file).
    """
    return CheckpointLoader.load_checkpoint(path, map_location='cpu',
                                            logger='silent')


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
    measure a model must not silently run random weights.

    Args:
        model (nn.Module): The model.
        path (str): Checkpoint file or URL (see :func:`read_checkpoint`).

    Returns:
        dict: The checkpoint's ``meta`` (empty if none).
    """
    ckpt = read_checkpoint(path)
    model.load_state_dict(fitting_state_dict(model, ckpt, path), strict=True)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    return meta if isinstance(meta, dict) else {}
