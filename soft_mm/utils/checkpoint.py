# Copyright (c) soft_mm contributors. All rights reserved.
"""Make mmengine checkpoints load with ``torch.load(weights_only=True)``.

torch >= 2.6 unpickles with ``weights_only=True`` by default, which refuses
two things an mmengine 0.10 checkpoint holds:

- numpy arrays, scalars and dtypes (message hub, metrics): plain data, so
  their constructors are allowlisted;
- ``HistoryBuffer`` objects, which mmengine pickles together with their
  statistics *functions* (``getattr(HistoryBuffer, 'min')``). Allowing
  ``getattr`` would allow arbitrary code, so instead soft_mm makes
  ``HistoryBuffer`` pickle as ``HistoryBuffer(log, count, max_length)`` and
  allowlists that constructor. Checkpoints written by soft_mm's tools (or any
  process that imported soft_mm) then load safely.

Nothing here turns on full unpickling: a checkpoint written by plain mmengine
still fails to load, with torch's message naming the refused global.
"""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer


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


def register_mmengine_safe_globals() -> None:
    """Allowlist the data types of mmengine checkpoints for safe loading.

    Idempotent; called when :mod:`soft_mm` is imported.
    """
    HistoryBuffer.__reduce__ = _reduce_history_buffer
    torch.serialization.add_safe_globals(
        [HistoryBuffer, *_numpy_safe_globals()])
