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

from ..reference import (NEWTON_ITERS, NEWTON_RIDGE, gaussian_kernel,
                         soft_attention_reference)

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


def _max_rel_err(got, want) -> float:
    got, want = got.detach().double().cpu(), want.detach().double()
    scale = want.abs().max().clamp_min(1e-30)
    return ((got - want).abs().max() / scale).item()


def _self_check(device_type: str) -> str:
    """Run every kernel that ``impl='auto'`` may launch, forward and
    backward, on small float32 problems (one compile each) and compare with
    the float64 reference on the CPU. Returns '' or what went wrong.

    Covered: the fused attention kernels (context, landmark with SOFT-Norm,
    output, gradient: the path of m <= 64) and both Gaussian kernels (the
    paths of m > 64). Larger blocks, other head dims and half-precision
    pointers are further specialisations of the same code, compiled ahead of
    time by ``tools/gpu/compile_triton.py``.
    """
    gen = torch.Generator().manual_seed(0)

    def randn(*shape, scale=0.3):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    def grads(fn, inputs, grad, dev, dtype):
        inputs = [t.to(dev, dtype).requires_grad_() for t in inputs]
        out = fn(*inputs)
        got = torch.autograd.grad(out, inputs, grad.to(dev, out.dtype))
        return [out] + list(got)

    q, lm = randn(1, 2, 40, 16), randn(1, 2, 7, 16)
    v = randn(1, 2, 40, 16, scale=1)
    x, y = randn(3, 20, 8, scale=1), randn(3, 7, 8, scale=1)
    checks = [
        ('attention', lambda *t: soft_attention_triton(*t, norm=True),
         lambda *t: soft_attention_reference(*t, norm=True), [q, lm, v],
         randn(1, 2, 40, 16, scale=1)),
        ('gaussian_kernel', gaussian_kernel_triton, gaussian_kernel, [x, y],
         randn(3, 20, 7, scale=1)),
    ]
    for name, fn, ref_fn, inputs, grad in checks:
        got = grads(fn, inputs, grad, device_type, torch.float32)
        want = grads(ref_fn, inputs, grad, 'cpu', torch.float64)
        for what, a, b in zip(['output'] + [f'grad {i}' for i in
                                            range(len(inputs))], got, want):
            err = _max_rel_err(a, b)
            if not err < 1e-3:  # also catches NaN
                return f'{name}: {what} off by {err:.3g} (relative)'
    return ''


def triton_works(device_type: str) -> bool:
    """Whether the Triton kernels compile and run correctly on
    ``device_type``.

    Checked once per device type (see :func:`_self_check`: every kernel
    ``'auto'`` may launch, forward and backward), so that ``impl='auto'``
    falls back, with one warning, on a GPU, driver or Triton version that
    cannot compile or run them instead of failing in a model. The check
    runs with autocast off and gradients on whatever the caller's mode (the
    first call typically comes from an AMP or ``no_grad`` forward), against
    a float64 reference on the CPU (a TF32 reference would fail it).

    Args:
        device_type (str): ``device.type``.

    Returns:
        bool: The cached result of the check.
    """
    if device_type not in triton_device_types():
        return False
    if device_type not in _works:
        try:
            with torch.inference_mode(False), torch.enable_grad(), \
                    torch.autocast(device_type, enabled=False), \
                    torch.autocast('cpu', enabled=False):
                why = _self_check(device_type)
        except Exception as e:  # compiler / driver errors of any kind
            why = f'{type(e).__name__}: {e}'
        if why:
            warnings.warn(f'soft_attention: the Triton kernels fail on '
                          f'{device_type} ({why[:500]}); impl=\'auto\' uses '
                          'the C++ kernels (or the reference) instead')
        _works[device_type] = not why
    return _works[device_type]


def compile_errors() -> tuple:
    """Exception types of a kernel that cannot be compiled or launched
    (compiler errors, resources beyond the device's); empty without
    triton."""
    if not triton_available() or TRITON_ERROR:
        return ()
    from triton.compiler.errors import CompilationError
    from triton.runtime.errors import OutOfResources
    return (CompilationError, OutOfResources)


def disable(device_type: str, why: str) -> None:
    """Stop ``impl='auto'`` choosing Triton on ``device_type`` (after a
    launch failed at a shape the self-check did not cover), with one
    warning."""
    if _works.get(device_type, True):
        warnings.warn(f'soft_attention: a Triton kernel failed on '
                      f'{device_type} ({why[:500]}); impl=\'auto\' uses the '
                      'C++ kernels (or the reference) from now on')
    _works[device_type] = False


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
    'compile_errors', 'disable',
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
