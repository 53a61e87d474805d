# Copyright (c) soft_mm contributors. All rights reserved.
"""The interface every implementation of the SOFT attention op provides."""
from typing import Optional, Tuple

from torch import Tensor


class Backend:
    """One implementation of the SOFT attention op and its two pieces.

    The public functions of :mod:`soft_mm.ops` check their arguments and
    pick a backend (:func:`soft_mm.ops.select_backend`); a backend receives
    checked tensors and only computes. Subclasses set :attr:`name` and
    implement the methods below.
    """

    #: The ``impl`` value that selects this backend.
    name: str = ''
    #: Exceptions of a kernel that cannot be compiled or launched at some
    #: shape; under ``impl='auto'`` such a failure falls back to the next
    #: backend (:meth:`disable` is called first).
    launch_errors: Tuple[type, ...] = ()

    def unavailable_reason(self, device_type: str) -> Optional[str]:
        """Why this backend cannot run on ``device_type`` here, or None.

        Args:
            device_type (str): ``device.type`` of the inputs.

        Returns:
            str | None: A reason for an error message, or None.
        """
        raise NotImplementedError

    def require(self, device_type: str) -> None:
        """Raise a clear error unless this backend can run on
        ``device_type`` (``RuntimeError``: what it needs is missing).

        Args:
            device_type (str): ``device.type`` of the inputs.
        """
        why = self.unavailable_reason(device_type)
        if why is not None:
            raise RuntimeError(f'soft_attention: impl={self.name!r}: {why}')

    def device_types(self) -> Tuple[str, ...]:
        """Device types this backend runs on here, e.g. ``('cpu',)``."""
        return tuple(d for d in ('cpu', 'cuda', 'npu')
                     if self.unavailable_reason(d) is None)

    def auto_ok(self, device_type: str) -> bool:
        """Whether ``impl='auto'`` may choose this backend on
        ``device_type`` (a backend may require more than being available,
        e.g. a passed self-check)."""
        return self.unavailable_reason(device_type) is None

    def disable(self, device_type: str, why: str) -> None:
        """Stop ``impl='auto'`` choosing this backend on ``device_type``
        after one of :attr:`launch_errors` (a backend that never raises them
        needs nothing here)."""

    def attention(self, q: Tensor, landmarks: Tensor, v: Tensor,
                  newton_iters: int, norm: bool) -> Tensor:
        """SOFT attention ``(A B^-1)(A^T V)``.

        Args:
            q (Tensor): ``(B, h, n, d)`` scaled queries.
            landmarks (Tensor): ``(B, h, m, d)``.
            v (Tensor): ``(B, h, n, dv)``.
            newton_iters (int): Newton iterations, >= 0.
            norm (bool): SOFT-Norm.

        Returns:
            Tensor: ``(B, h, n, dv)`` in the dtype of ``v``.
        """
        raise NotImplementedError

    def gaussian_kernel(self, x: Tensor, y: Tensor) -> Tensor:
        """``exp(-||x_i - y_j||^2 / 2)`` of ``(..., n, d)`` and
        ``(..., m, d)``: ``(..., n, m)``."""
        raise NotImplementedError

    def newton_inverse(self, mat: Tensor, iters: int, ridge: float) -> Tensor:
        """SOFT's Newton inverse of ``mat + ridge * I``, ``(..., m, m)``,
        differentiable with the analytic gradient ``-V^T G V^T``."""
        raise NotImplementedError
