# Copyright (c) soft_mm contributors. All rights reserved.
"""Safe checkpoint reading: one allowlist, one-line errors.

Everything soft_mm reads is unpickled with ``torch.load(weights_only=True)``:
a file can hold tensors, containers and plain numbers, never code. On top of
torch's own allowlist, :data:`SAFE_GLOBALS` admits the plain-data types that
real checkpoints carry:

- numpy arrays, scalars and dtypes (mmengine's message hub and metrics);
- mmengine's ``HistoryBuffer``, which mmengine pickles together with its
  statistics *functions* (``getattr(HistoryBuffer, 'min')``). Allowing
  ``getattr`` would allow arbitrary code, so instead
  :func:`register_safe_globals` makes ``HistoryBuffer`` pickle as
  ``HistoryBuffer(log, count, max_length)`` and allowlists that constructor:
  checkpoints written by any process that imported soft_mm load safely;
- ``argparse.Namespace``, which timm-based training scripts (the official
  SOFT code among them) store under ``'args'``; its contents still go
  through the restricted unpickler.

Nothing here turns on full unpickling: a checkpoint written by plain mmengine
still fails to load, with a message naming the refused global.
"""
import argparse
import json
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Dict, Iterable, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .atomic import atomic_write


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit; the message names the
    file and the problem in one line."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """There is no file at the path: a :class:`CheckpointError`, and the
    ``FileNotFoundError`` that mmengine's callers expect."""


def _reduce_history_buffer(self: HistoryBuffer):
    # The statistics methods are class-level registrations, re-made at
    # import time; only the data needs to travel.
    return HistoryBuffer, (self._log_history, self._count_history,
                           self.max_length)


def _numpy_safe_globals() -> list:
    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    dtype_classes = [
        type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32,
                                    np.int64, np.uint8, np.float16,
                                    np.float32, np.float64)
    ]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes]


#: The one allowlist of soft_mm: plain-data types checkpoints carry.
SAFE_GLOBALS = [HistoryBuffer, argparse.Namespace, *_numpy_safe_globals()]


def register_safe_globals() -> None:
    """Admit :data:`SAFE_GLOBALS` to every ``torch.load(weights_only=True)``
    in this process (mmengine's resume included).

    Idempotent; called when :mod:`soft_mm` is imported.
    """
    HistoryBuffer.__reduce__ = _reduce_history_buffer
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


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
        raise CheckpointNotFoundError(f'{path}: no such file')
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: not a regular file')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path}: the file is empty')


def safe_torch_load(path: str, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and one-line errors.

    ``.safetensors`` files are read with ``safetensors`` (a format that
    cannot carry code). Anything that is not a checkpoint gives
    ``not a PyTorch checkpoint: PATH``; a pickle that names a global outside
    the allowlist is refused naming that global. Never is full unpickling
    suggested.

    Args:
        path (str): Checkpoint file.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object (dicts, tensors, numbers, strings).
    """
    check_file(path)
    if str(path).endswith('.safetensors'):
        return load_safetensors(path)
    # Not `with torch.serialization.safe_globals(...)`: its exit removes the
    # listed globals, also when they were registered for the whole process
    # (mmengine's resume, torch.load in user code would then refuse them).
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is several paragraphs and advises full
        # unpickling; keep only the refused global, if that was the cause.
        refused = re.search(r'GLOBAL ([\w.]+)', str(e))
        if refused:
            raise CheckpointError(
                f'{path}: refused to unpickle the global {refused[1]}: '
                'soft_mm reads tensors and plain data only') from None
        raise CheckpointError(f'not a PyTorch checkpoint: {path} '
                              '(not a torch.save file)') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            KeyError, IndexError, TypeError, AttributeError) as e:
        # Text, random bytes, a foreign zip or a truncated file end in any
        # of these, from deep inside torch's reader.
        msg = ' '.join(str(e).split()) or type(e).__name__
        raise CheckpointError(f'not a PyTorch checkpoint: {path} (corrupt, '
                              f'truncated or another format: {msg[:120]})'
                              ) from None


def load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (on the CPU).

    Args:
        path (str): The file.

    Returns:
        OrderedDict[str, Tensor]: Name to tensor, in file order.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    check_file(path)
    try:
        return OrderedDict(load_file(path, device='cpu'))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f'not a safetensors checkpoint: {path} '
            f'({" ".join(str(e).split())[:120]})') from None


def save_safetensors(state: Dict[str, torch.Tensor], path: str,
                     metadata: Optional[Dict[str, str]] = None) -> None:
    """Write ``state`` as ``.safetensors`` (contiguous, CPU copies),
    atomically.

    Args:
        state (dict): Name to tensor.
        path (str): Output file.
        metadata (dict[str, str], optional): Stored in the file header.
    """
    from safetensors.torch import save_file
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def check_destination(src: str, dst: str) -> None:
    """Refuse to write a converted checkpoint over its source or into a
    directory's name.

    Args:
        src (str): The file read.
        dst (str): The file to write.
    """
    if os.path.isdir(dst):
        raise CheckpointError(
            f'{dst}: is a directory; give the output file, e.g. '
            f'{os.path.join(dst, os.path.basename(src) + ".pth")}')
    if os.path.realpath(src) == os.path.realpath(dst) or (
            os.path.exists(dst) and os.path.samefile(src, dst)):
        raise CheckpointError(f'{dst}: is the source file; refusing to '
                              'overwrite it')


#: Formats :func:`save_checkpoint_file` writes, by file suffix.
CHECKPOINT_FORMATS = {'pth': '.pth', 'safetensors': '.safetensors'}


def save_checkpoint_file(ckpt: dict, path: str,
                         fmt: Optional[str] = None) -> None:
    """Write ``{'state_dict', 'meta'}`` atomically (:func:`atomic_write`):
    ``torch.save``, or as ``.safetensors`` the tensors with ``meta`` as JSON
    in the header (key ``soft_mm_meta``).

    Args:
        ckpt (dict): ``state_dict`` (name to tensor) and ``meta`` (dict).
        path (str): Output file; its folder is created.
        fmt (str, optional): ``'pth'`` or ``'safetensors'``; None: from the
            suffix of ``path`` (``.safetensors``, else ``pth``). A format
            that contradicts the suffix is refused: loaders pick the reader
            by suffix.
    """
    is_st = str(path).endswith('.safetensors')
    if fmt is None:
        fmt = 'safetensors' if is_st else 'pth'
    if fmt not in CHECKPOINT_FORMATS:
        raise CheckpointError(f'unknown checkpoint format {fmt!r}, choose '
                              f'from {sorted(CHECKPOINT_FORMATS)}')
    if (fmt == 'safetensors') != is_st:
        raise CheckpointError(
            f'{path}: --format {fmt} needs a file name ending in '
            f'{CHECKPOINT_FORMATS[fmt]!r}' if fmt == 'safetensors' else
            f'{path}: a .safetensors name for --format pth')
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt == 'safetensors':
        meta = json.dumps(ckpt.get('meta', {}), default=str)
        save_safetensors(ckpt['state_dict'], path, {'soft_mm_meta': meta})
    else:
        atomic_write(path, lambda f: torch.save(ckpt, f))


def extract_state_dict(
        ckpt, path: str,
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
    # load_state_dict would cast silently: an integer tensor where the model
    # holds floats (or the reverse) is a wrong file, not a format detail.
    wrong_kind = [
        f'{k} {source[k].dtype} vs {expected[k].dtype}' for k in expected
        if k in source and torch.is_tensor(source[k])
        and source[k].is_floating_point() != expected[k].is_floating_point()
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
    if wrong_kind:
        problems.append(f'{len(wrong_kind)} dtype mismatches (file vs '
                        f'model): {short_list(wrong_kind, 4)}')
    if problems:
        raise CheckpointError(f'{path}: does not fit {what}: ' +
                              '; '.join(problems))


def strip_module_prefix(state: Dict[str, torch.Tensor]) -> dict:
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds, when
    every key has it; otherwise return ``state`` unchanged."""
    if state and all(k.startswith('module.') for k in state):
        return OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return state
