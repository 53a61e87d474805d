# Copyright (c) soft_mm contributors. All rights reserved.
"""The Triton kernels as a backend of the SOFT attention op
(``impl='triton'``).

They run on CUDA tensors, and on CPU tensors through Triton's interpreter
when ``TRITON_INTERPRET=1`` was set before triton was imported (how CI
executes them). Nothing here imports triton or defines a kernel until the
backend is first asked whether it can run; the kernel modules
(``gaussian.py``, ``newton.py``, ``attention.py``) are imported by the
methods that launch them. See ``docs/ops.md`` for the kernels and when
``impl='auto'`` picks them.
"""
import warnings
from typing import Dict, Optional

import torch

from ..backend import Backend
from ..reference import gaussian_kernel, soft_attention_reference


def _max_rel_err(got, want) -> float:
    got, want = got.detach().double().cpu(), want.detach().double()
    scale = want.abs().max().clamp_min(1e-30)
    return ((got - want).abs().max() / scale).item()


class TritonBackend(Backend):
    """The Triton kernels; ``impl='auto'`` chooses them on CUDA once they
    pass a self-check there (:meth:`verified`)."""

    name = 'triton'

    def __init__(self):
        self._triton = None
        # Why triton cannot be used (None: usable, or not tried yet).
        self._error: Optional[str] = None
        # TRITON_INTERPRET as triton saw it (read once: triton defines its
        # library functions for one mode when it is imported).
        self._interpret: Optional[bool] = None
        # Self-check results per device type (False also after disable()).
        self._verified: Dict[str, bool] = {}

    # ---- availability

    def import_error(self) -> Optional[str]:
        """Why triton cannot be used here (it is imported on the first
        call), or None."""
        if self._triton is None and self._error is None:
            try:
                import triton
            except ImportError as e:  # no triton wheel for this platform
                self._error = f'{type(e).__name__}: {e}'
            else:
                if not hasattr(torch.library, 'custom_op'):
                    self._error = (f'torch {torch.__version__} lacks torch.'
                                   'library.custom_op (needs torch>=2.4)')
                else:
                    from triton.compiler.errors import CompilationError
                    from triton.runtime.errors import OutOfResources
                    self._triton = triton
                    self.launch_errors = (CompilationError, OutOfResources)
        return self._error

    def interpreting(self) -> bool:
        """Whether ``TRITON_INTERPRET`` asks for Triton's CPU interpreter
        (read on the first call)."""
        if self._interpret is None and self.import_error() is None:
            self._interpret = bool(self._triton.knobs.runtime.interpret)
        return bool(self._interpret)

    def _interpreter_ready(self) -> bool:
        """Whether triton itself was imported in interpreter mode (its
        library functions such as ``tl.sum`` are then interpretable)."""
        from triton.runtime.interpreter import InterpretedFunction
        return isinstance(self._triton.language.standard.sum,
                          InterpretedFunction)

    def unavailable_reason(self, device_type: str) -> Optional[str]:
        why = self.import_error()
        if why:
            return f'triton does not import: {why}'
        if device_type == 'cuda':
            return None if torch.cuda.is_available() else 'no CUDA device'
        if device_type == 'cpu' and self.interpreting():
            if self._interpreter_ready():
                return None
            return ('TRITON_INTERPRET=1 was set after triton was imported; '
                    'set it before (e.g. in the environment)')
        return ('the Triton kernels run on CUDA tensors, or on CPU tensors '
                'with TRITON_INTERPRET=1 (the Triton interpreter); got '
                f'{device_type} tensors')

    def require(self, device_type: str) -> None:
        why = self.unavailable_reason(device_type)
        if why is None:
            return
        if self.import_error() or device_type == 'cpu' and self.interpreting():
            raise RuntimeError(f"soft_attention: impl='triton': {why}")
        raise ValueError(f"soft_attention: impl='triton': {why} (usable "
                         f'here: {self.device_types()})')

    # ---- the choice of impl='auto'

    def auto_ok(self, device_type: str) -> bool:
        """On CUDA, once :meth:`verified` there; never on the CPU (the
        interpreter is for tests)."""
        return (device_type == 'cuda'
                and self.unavailable_reason(device_type) is None
                and self.verified(device_type))

    def verified(self, device_type: str) -> bool:
        """Whether the kernels compile and run correctly on ``device_type``.

        Checked once per device type (:meth:`_self_check`: every kernel
        ``impl='auto'`` may launch, forward and backward), so that
        ``impl='auto'`` falls back, with one warning, on a GPU, driver or
        Triton version that cannot compile or run them instead of failing
        in a model. The check runs with autocast off and gradients on
        whatever the caller's mode (the first call typically comes from an
        AMP or ``no_grad`` forward), against a float64 reference on the CPU
        (a TF32 reference would fail it).

        Args:
            device_type (str): ``device.type``.

        Returns:
            bool: The cached result of the check.
        """
        if self.unavailable_reason(device_type) is not None:
            return False
        if device_type not in self._verified:
            try:
                with torch.inference_mode(False), torch.enable_grad(), \
                        torch.autocast(device_type, enabled=False), \
                        torch.autocast('cpu', enabled=False):
                    why = self._self_check(device_type)
            except Exception as e:  # compiler / driver errors of any kind
                why = f'{type(e).__name__}: {e}'
            if why:
                warnings.warn(f'soft_attention: the Triton kernels fail on '
                              f'{device_type} ({why[:500]}); impl=\'auto\' '
                              'uses the C++ kernels (or the reference) '
                              'instead')
            self._verified[device_type] = not why
        return self._verified[device_type]

    def _self_check(self, device_type: str) -> str:
        """Run every kernel that ``impl='auto'`` may launch, forward and
        backward, on small float32 problems (one compile each) and compare
        with the float64 reference on the CPU. Returns '' or what went
        wrong.

        Covered: the fused attention kernels (context, landmark with
        SOFT-Norm, output, gradient: the path of m <= 64) and both Gaussian
        kernels (the paths of m > 64). Larger blocks, other head dims and
        half-precision pointers are further specialisations of the same
        code, compiled ahead of time by ``tools/gpu/compile_triton.py``.
        """
        gen = torch.Generator().manual_seed(0)

        def randn(*shape, scale=0.3):
            return torch.randn(
                *shape, generator=gen, dtype=torch.float64) * scale

        def grads(fn, inputs, grad, dev, dtype):
            inputs = [t.to(dev, dtype).requires_grad_() for t in inputs]
            out = fn(*inputs)
            got = torch.autograd.grad(out, inputs, grad.to(dev, out.dtype))
            return [out] + list(got)

        q, lm = randn(1, 2, 40, 16), randn(1, 2, 7, 16)
        v = randn(1, 2, 40, 16, scale=1)
        x, y = randn(3, 20, 8, scale=1), randn(3, 7, 8, scale=1)
        checks = [
            ('attention', lambda *t: self.attention(*t, 20, True),
             lambda *t: soft_attention_reference(*t, norm=True), [q, lm, v],
             randn(1, 2, 40, 16, scale=1)),
            ('gaussian_kernel', self.gaussian_kernel, gaussian_kernel,
             [x, y], randn(3, 20, 7, scale=1)),
        ]
        for name, fn, ref_fn, inputs, grad in checks:
            got = grads(fn, inputs, grad, device_type, torch.float32)
            want = grads(ref_fn, inputs, grad, 'cpu', torch.float64)
            for what, a, b in zip(['output'] + [
                    f'grad {i}' for i in range(len(inputs))], got, want):
                err = _max_rel_err(a, b)
                if not err < 1e-3:  # also catches NaN
                    return f'{name}: {what} off by {err:.3g} (relative)'
        return ''

    def disable(self, device_type: str, why: str) -> None:
        if self._verified.get(device_type, True):
            warnings.warn(f'soft_attention: a Triton kernel failed on '
                          f'{device_type} ({why[:500]}); impl=\'auto\' uses '
                          'the C++ kernels (or the reference) from now on')
        self._verified[device_type] = False

    # ---- the kernels

    def attention(self, q, landmarks, v, newton_iters, norm):
        from .attention import soft_attention_triton
        return soft_attention_triton(q, landmarks, v, newton_iters, norm)

    def gaussian_kernel(self, x, y):
        from .gaussian import gaussian_kernel_triton
        return gaussian_kernel_triton(x, y)

    def newton_inverse(self, mat, iters, ridge):
        from .newton import newton_inverse_triton
        return newton_inverse_triton(mat, iters, ridge)
