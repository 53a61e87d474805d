# Copyright (c) soft_mm contributors. All rights reserved.
"""Triton kernels of the SOFT attention op (``impl='triton'``).

They run on CUDA tensors, and on CPU tensors through Triton's interpreter
when ``TRITON_INTERPRET=1`` (how CI executes them). Triton reads that
variable when it is imported (its own library functions are defined then)
and when each kernel is defined, so this package imports neither until the
first Triton call: ``import soft_mm`` leaves a script free to set it. See
``docs/ops.md`` for the kernels and when ``'auto'`` picks them.
"""
import importlib
import sys
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reference import NEWTON_ITERS, NEWTON_RIDGE, gaussian_kernel

#: Why Triton is unusable (None: usable, or not tried yet; see
#: :func:`triton_available`).
TRITON_ERROR: Optional[str] = None
_triton = None
# TRITON_INTERPRET as triton saw it (read once: triton defines its own
# library for one mode at import), the loaded kernel modules, and the
# results of the one-off self-check of 'auto'.
_interpret: Optional[bool] = None
_modules = {}
_works = {}
_KERNEL_MODULES = ('gaussian', 'newton', 'attention')


def triton_available() -> bool:
    """Whether Triton imports (imported on the first call) and torch can
    register the ops."""
    global _triton, TRITON_ERROR
    if _triton is None and TRITON_ERROR is None:
        try:
            import triton
        except ImportError as e:  # no triton wheel for this platform
            TRITON_ERROR = f'{type(e).__name__}: {e}'
        else:
            if not hasattr(torch.library, 'custom_op'):
                TRITON_ERROR = (f'torch {torch.__version__} lacks '
                                'torch.library.custom_op (needs torch>=2.4)')
            else:
                _triton = triton
    return _triton is not None


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for Triton's CPU interpreter (read
    on the first call)."""
    global _interpret
    if _interpret is None and triton_available():
        _interpret = bool(_triton.knobs.runtime.interpret)
    return bool(_interpret)


def _interpreter_ready() -> bool:
    """Whether Triton itself was imported in interpreter mode (its library
    functions such as ``tl.sum`` are then interpretable)."""
    if not interpreting():
        return False
    from triton.runtime.interpreter import InterpretedFunction
    return isinstance(_triton.language.standard.sum, InterpretedFunction)


def triton_device_types() -> Tuple[str, ...]:
    """Device types ``impl='triton'`` accepts here, e.g. ``('cuda',)``."""
    if not triton_available():
        return ()
    types = []
    if interpreting():
        types.append('cpu')
    if torch.cuda.is_available():
        types.append('cuda')
    return tuple(types)


def _module(name: str):
    """A kernel module, imported (its kernels defined) on first use."""
    module = _modules.get(name)
    if module is not None:  # the only path taken under torch.compile
        return module
    if interpreting() and not _interpreter_ready():
        raise RuntimeError(
            "impl='triton': TRITON_INTERPRET=1 was set after triton was "
            'imported; set it before (e.g. in the environment)')
    for each in _KERNEL_MODULES:
        _modules[each] = importlib.import_module(f'{__name__}.{each}')
    return _modules[name]


def require(device_type: str) -> None:
    """Raise a clear error unless ``impl='triton'`` can run on the device.

    Args:
        device_type (str): ``device.type`` of the inputs.
    """
    if not triton_available() or TRITON_ERROR:
        raise RuntimeError(
            f"soft_attention: impl='triton' needs triton: {TRITON_ERROR}")
    if device_type not in triton_device_types():
        raise ValueError(
            "soft_attention: impl='triton' runs on CUDA tensors, or on CPU "
            'tensors with TRITON_INTERPRET=1 (the Triton interpreter); got '
            f'{device_type} tensors (usable here: {triton_device_types()})')


def triton_works(device_type: str) -> bool:
    """Whether the Triton kernels run correctly on ``device_type``.

    Checked once per device type by one small Gaussian kernel against the
    reference, so that ``impl='auto'`` falls back (with one warning) on a
    GPU that Triton cannot compile for instead of failing in a model.

    Args:
        device_type (str): ``device.type``.

    Returns:
        bool: The cached result of the check.
    """
    if device_type not in triton_device_types():
        return False
    if device_type not in _works:
        try:
            x = torch.linspace(-1, 1, 3 * 20 * 8, device=device_type)
            x = x.view(3, 20, 8)
            got = gaussian_kernel_triton(x, x[:, :7])
            ok = torch.allclose(got, gaussian_kernel(x, x[:, :7]),
                                atol=1e-5)
            why = 'wrong results' if not ok else ''
        except Exception as e:  # compiler / driver errors of any kind
            ok, why = False, f'{type(e).__name__}: {e}'
        if not ok:
            warnings.warn(f'soft_attention: the Triton kernels fail on '
                          f'{device_type} ({why[:300]}); impl=\'auto\' uses '
                          'the C++ kernels (or the reference) instead')
        _works[device_type] = ok
    return _works[device_type]


def unsupported_reason(q: Tensor, landmarks: Tensor,
                       v: Tensor) -> Optional[str]:
    """Why the Triton kernels cannot take these inputs, or None."""
    return _module('attention').unsupported_reason(q, landmarks, v)


def soft_attention_triton(q: Tensor,
                          landmarks: Tensor,
                          v: Tensor,
                          newton_iters: int = NEWTON_ITERS,
                          norm: bool = False) -> Tensor:
    """SOFT attention from the Triton kernels; see
    :func:`soft_mm.ops.soft_attention`.

    Returns:
        Tensor: ``(B, h, n, dv)`` in the dtype of ``v``.
    """
    require(q.device.type)
    return _module('attention').soft_attention_triton(q, landmarks, v,
                                                      newton_iters, norm)


def gaussian_kernel_triton(x: Tensor, y: Tensor) -> Tensor:
    """``exp(-||x_i - y_j||^2 / 2)`` from the tiled Triton kernel.

    Args:
        x (Tensor): ``(..., n, d)``.
        y (Tensor): ``(..., m, d)`` with the same leading dims.

    Returns:
        Tensor: ``(..., n, m)`` in float32 (float64 for float64 inputs).
    """
    require(x.device.type)
    return _module('gaussian').gaussian_kernel_triton(x, y)


def newton_inverse_triton(mat: Tensor,
                          iters: int = NEWTON_ITERS,
                          ridge: float = NEWTON_RIDGE) -> Tensor:
    """SOFT's Newton inverse of ``mat + ridge * I`` from the Triton kernel
    (one program per matrix for m <= 64, batched GEMMs beyond).

    Args:
        mat (Tensor): ``(..., m, m)``.
        iters (int): Iterations, >= 0. Defaults to 20.
        ridge (float): Diagonal ridge. Defaults to 0.01.

    Returns:
        Tensor: ``(..., m, m)`` in float32 (float64 for float64 inputs).
    """
    require(mat.device.type)
    return _module('newton').newton_inverse_triton(mat, iters, ridge)


__all__ = [
    'TRITON_ERROR', 'triton_available', 'triton_device_types',
    'interpreting', 'require', 'triton_works', 'unsupported_reason',
    'soft_attention_triton', 'gaussian_kernel_triton',
    'newton_inverse_triton'
]


# torch._dynamo (which soft_mm.ops.ext's op registration loads) has usually
# imported triton already, fixing the mode: then define the kernels now, so
# that torch.compile never traces the import.
if 'triton' in sys.modules and triton_available() and (
        not interpreting() or _interpreter_ready()):
    try:
        _module('attention')
    except Exception as e:  # a broken triton install: report on use
        TRITON_ERROR = f'{type(e).__name__}: {e}'
        _triton = None
