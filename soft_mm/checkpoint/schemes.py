# Copyright (c) soft_mm contributors. All rights reserved.
"""mmengine checkpoint schemes that convert original SOFT files on load.

With these registered (importing :mod:`soft_mm` does it), a
config can point at an original file directly::

    init_cfg=dict(type='Pretrained',
                  checkpoint='soft-official://checkpoints/soft_tiny.pth')
    load_from = 'soft-mindspore://checkpoints/SOFT_tiny.ckpt'

- ``soft-official://PATH``: official PyTorch file, EMA weights when present;
  ``soft-official-noema://PATH`` takes ``state_dict`` instead. (SOFT-Norm
  weights load the same way: the flag only matters for the printed hint.)
- ``soft-mindspore://PATH``: the seed's MindSpore ``.ckpt``.

Local files ending in ``.safetensors`` load too (``load_from``,
``Pretrained``, the tools): mmengine's local loader is extended for them.

The result is ``{'state_dict', 'meta'}`` with ImageClassifier names
(``backbone.*``, ``head.fc.*``); use ``prefix='backbone.'`` in a backbone's
``init_cfg``.
"""
import os.path as osp

from mmengine.runner import CheckpointLoader

from .io import safe_torch_load
from .mindspore import load_mindspore_checkpoint
from .official import load_official_checkpoint

SCHEMES = {
    'soft-official://':
    lambda path: load_official_checkpoint(path, use_ema=True),
    'soft-official-noema://':
    lambda path: load_official_checkpoint(path, use_ema=False),
    'soft-mindspore://': load_mindspore_checkpoint,
}


def _make_mmengine_loader(prefix: str):

    def loader(filename: str, map_location=None) -> dict:
        # Tensors are built on the CPU; mmengine moves them when loading.
        return SCHEMES[prefix](filename[len(prefix):])

    loader.__name__ = 'load_from_' + prefix.rstrip(':/').replace('-', '_')
    return loader


def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """mmengine's loader of local files, made safe and clear: weights-only
    unpickling with soft_mm's allowlist, ``.safetensors`` files, one-line
    errors (:func:`soft_mm.checkpoint.safe_torch_load`; a missing file
    raises ``CheckpointNotFoundError``, a ``FileNotFoundError`` as mmengine's
    callers expect).

    Args:
        filename (str): Local path.
        map_location: As :func:`torch.load`. Defaults to the CPU.

    Returns:
        dict: The checkpoint (for ``.safetensors``: name to tensor).
    """
    return safe_torch_load(osp.expanduser(filename), map_location or 'cpu')


def register_checkpoint_schemes() -> None:
    """Register :data:`SCHEMES` and :func:`load_local_checkpoint` with
    ``mmengine.runner.CheckpointLoader``.

    Idempotent (re-registration replaces the loaders).
    """
    for prefix in SCHEMES:
        CheckpointLoader.register_scheme(
            prefixes=prefix, loader=_make_mmengine_loader(prefix), force=True)
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
