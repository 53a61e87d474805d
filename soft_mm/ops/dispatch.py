# Copyright (c) soft_mm contributors. All rights reserved.
"""The one place that picks the backend of the SOFT attention op.

``impl`` names what runs: ``'reference'`` (pure PyTorch), ``'ext'`` (the
compiled extension ``soft_mm._ext``: its CPU, CUDA or NPU kernel, by the
inputs' device), ``'triton'`` (the Triton kernels), or ``'auto'``. The old
device spellings ``'cpu'``, ``'cuda'`` and ``'npu'`` still work: they mean
``'ext'`` with inputs on that device, with a ``DeprecationWarning``.
"""
import warnings
from typing import Optional, Tuple

import torch

from .backend import Backend
from .ext import ExtBackend
from .reference import ReferenceBackend
from .triton import TritonBackend

#: Values of ``impl``: ``'auto'`` picks the fastest backend that runs on the
#: inputs' device; the others force one and raise if it cannot run.
IMPLS = ('auto', 'ext', 'triton', 'reference')
#: Deprecated spellings of ``'ext'`` that also name the inputs' device.
DEVICE_IMPLS = ('cpu', 'cuda', 'npu')

_BACKENDS = {
    b.name: b
    for b in (ReferenceBackend(), ExtBackend(), TritonBackend())
}
# Deprecated spellings already warned about, and the (device type, reason)
# pairs 'auto' already warned about falling back to the reference: one
# warning each per process.
_warned_spellings = set()
_warned_fallback = set()


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (``'reference'``, ``'ext'``,
    ``'triton'``).

    Args:
        name (str): A backend name.

    Returns:
        Backend: The process-wide instance.
    """
    if name not in _BACKENDS:
        raise ValueError(f'unknown SOFT attention backend {name!r}, choose '
                         f'from {tuple(_BACKENDS)}')
    return _BACKENDS[name]


def parse_impl(impl: str,
               owner: str = 'soft_attention') -> Tuple[str, Optional[str]]:
    """Split an ``impl`` value into what it asks for.

    Args:
        impl (str): One of :data:`IMPLS` or :data:`DEVICE_IMPLS`.
        owner (str): Who is asking, for messages.

    Returns:
        tuple[str, str | None]: The canonical value (one of :data:`IMPLS`)
        and the device type the inputs must be on (only for the deprecated
        device spellings).
    """
    if impl in IMPLS:
        return impl, None
    if impl in DEVICE_IMPLS:
        if impl not in _warned_spellings:
            _warned_spellings.add(impl)
            warnings.warn(
                f'{owner}: impl={impl!r} (attn_impl of SOFT models) is '
                "deprecated, use 'ext': the compiled extension, whose kernel "
                "for the inputs' device runs", DeprecationWarning,
                stacklevel=3)
        return 'ext', impl
    raise ValueError(f'{owner}: unknown impl {impl!r}, choose from {IMPLS} '
                     f'(deprecated: {DEVICE_IMPLS})')


def select_backend(impl: str,
                   device_type: str,
                   dtype: Optional[torch.dtype] = None) -> Backend:
    """The backend that runs for ``impl`` on inputs of ``device_type``.

    ``'auto'``: on CUDA the Triton kernels once they pass their self-check
    there (not for float64 inputs, which the extension's kernels handle
    natively), else the extension's kernel for the device, else the
    reference with one warning per device type. CPU tensors never go to
    Triton under ``'auto'``. A forced ``impl`` that cannot run raises.

    Args:
        impl (str): One of :data:`IMPLS` (or a deprecated device spelling).
        device_type (str): ``device.type`` of the inputs.
        dtype (torch.dtype, optional): The inputs' compute dtype, if known.

    Returns:
        Backend: The backend.
    """
    impl, device = parse_impl(impl)
    if device is not None and device != device_type:
        raise ValueError(f'soft_attention: impl={device!r} needs inputs on '
                         f'{device}, got {device_type} tensors')
    if impl != 'auto':
        backend = _BACKENDS[impl]
        backend.require(device_type)
        return backend
    if device_type == 'meta':  # shapes only: the reference, quietly
        return _BACKENDS['reference']
    order = ('ext', 'triton') if dtype == torch.float64 else ('triton', 'ext')
    for name in order:
        if _BACKENDS[name].auto_ok(device_type):
            return _BACKENDS[name]
    why = _BACKENDS['ext'].unavailable_reason(device_type)
    if (device_type, why) not in _warned_fallback:
        _warned_fallback.add((device_type, why))
        warnings.warn(
            f'soft_attention: no soft_mm._ext kernel for {device_type} '
            f'({why}); using the slower pure-PyTorch reference. Build the '
            'extension with `python setup.py build_ext --inplace` (or pass '
            "impl='reference' to silence this).")
    return _BACKENDS['reference']


# A host-side decision, constant for its arguments: torch.compile runs it
# eagerly while tracing (importing triton, reading its mode, the self-check
# of 'auto' are not traceable) and keeps the name it returns.
@torch.compiler.assume_constant_result
def resolve_impl(impl: str,
                 device_type: str,
                 dtype: Optional[torch.dtype] = None) -> str:
    """The name of the backend :func:`select_backend` picks: one of
    ``'ext'``, ``'triton'``, ``'reference'``."""
    return select_backend(impl, device_type, dtype).name


def impl_unusable_reason(impl: str) -> Optional[str]:
    """Why ``impl`` can run on no device here (for checks when a model is
    built, before any input exists), or None.

    ``'auto'`` and ``'reference'`` always run; ``'ext'`` needs
    ``soft_mm._ext`` (a device spelling: its kernel for that device);
    ``'triton'`` needs triton and a CUDA device, or the interpreter.

    Args:
        impl (str): One of :data:`IMPLS` or :data:`DEVICE_IMPLS`.

    Returns:
        str | None: The reason, or None.
    """
    name, device = parse_impl(impl)
    if name in ('auto', 'reference'):
        return None
    backend = _BACKENDS[name]
    if device is not None:
        return backend.unavailable_reason(device)
    if backend.device_types():
        return None
    if name == 'triton':
        return ('Triton cannot run here (it needs triton and a CUDA device, '
                'or TRITON_INTERPRET=1 on CPU)')
    return backend.unavailable_reason('cpu')


def triton_available() -> bool:
    """Whether triton imports here (and torch can register its ops)."""
    return _BACKENDS['triton'].import_error() is None


def triton_device_types() -> Tuple[str, ...]:
    """Device types ``impl='triton'`` runs on here, e.g. ``('cuda',)``."""
    return _BACKENDS['triton'].device_types()
