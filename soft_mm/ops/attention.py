# Copyright (c) soft_mm contributors. All rights reserved.
"""The public SOFT attention op and its two pieces: arguments are checked
here, once, then the backend that :func:`~soft_mm.ops.select_backend`
picks computes."""
from torch import Tensor

from .checks import (check_attention_inputs, check_newton_iters,
                     check_newton_matrix, check_newton_ridge, check_norm,
                     check_point_sets)
from .dispatch import get_backend, resolve_impl
from .reference import NEWTON_ITERS, NEWTON_RIDGE, compute_dtype


def soft_attention(q: Tensor,
                   landmarks: Tensor,
                   v: Tensor,
                   *,
                   newton_iters: int = NEWTON_ITERS,
                   norm: bool = False,
                   impl: str = 'auto') -> Tensor:
    """SOFT attention ``(A B^-1)(A^T V)`` with Gaussian kernels.

    Args:
        q (Tensor): Scaled queries (= keys), ``(B, h, n, d)``.
        landmarks (Tensor): Sampled queries, ``(B, h, m, d)``.
        v (Tensor): Values, ``(B, h, n, dv)``.
        newton_iters (int): Newton iterations for ``B^-1``. Defaults to 20.
        norm (bool): SOFT-Norm (symmetric degree normalisation of ``B^-1``).
            Defaults to False.
        impl (str): ``'auto'`` (see :func:`~soft_mm.ops.select_backend`),
            ``'ext'`` (the compiled extension's kernel for the inputs'
            device), ``'triton'`` (CUDA tensors, or CPU tensors under
            ``TRITON_INTERPRET=1``) or ``'reference'`` (pure PyTorch).
            Defaults to ``'auto'``.

    Returns:
        Tensor: ``(B, h, n, dv)`` in the dtype of ``v``.
    """
    check_attention_inputs(q, landmarks, v)
    newton_iters = check_newton_iters(newton_iters)
    norm = check_norm(norm)
    device_type = q.device.type
    backend = get_backend(
        resolve_impl(impl, device_type, compute_dtype(q, landmarks, v)))
    if impl != 'auto' or not backend.launch_errors:
        return backend.attention(q, landmarks, v, newton_iters, norm)
    try:
        return backend.attention(q, landmarks, v, newton_iters, norm)
    except backend.launch_errors as e:
        # A shape the backend's self-check did not cover cannot compile or
        # does not fit the device: 'auto' falls back for good, once warned.
        # (Forward only: a backward that fails has no fallback here.)
        backend.disable(device_type, f'{type(e).__name__}: {e}')
        return soft_attention(q, landmarks, v, newton_iters=newton_iters,
                              norm=norm, impl=impl)


def gaussian_kernel(x: Tensor,
                    y: Tensor,
                    *,
                    impl: str = 'reference') -> Tensor:
    """``exp(-||x_i - y_j||^2 / 2)`` for all pairs.

    Args:
        x (Tensor): ``(..., n, d)``.
        y (Tensor): ``(..., m, d)`` with the same leading dims.
        impl (str): As for :func:`soft_attention`. Defaults to
            ``'reference'``, which returns the inputs' dtype; the kernels
            return float32 (float64 for float64 inputs).

    Returns:
        Tensor: ``(..., n, m)`` with entries in ``(0, 1]``.
    """
    check_point_sets(x, y)
    backend = get_backend(resolve_impl(impl, x.device.type,
                                       compute_dtype(x, y)))
    return backend.gaussian_kernel(x, y)


def newton_inverse(mat: Tensor,
                   iters: int = NEWTON_ITERS,
                   ridge: float = NEWTON_RIDGE,
                   *,
                   impl: str = 'reference') -> Tensor:
    """SOFT's Newton inverse of ``mat + ridge * I``, differentiable with the
    analytic gradient ``-V^T G V^T``.

    Args:
        mat (Tensor): ``(..., m, m)``.
        iters (int): Iterations, >= 0. Defaults to 20.
        ridge (float): Diagonal ridge, ``>= 0``. The step ``alpha`` comes
            from ``mat`` (the model's definition), so the iteration
            converges only for a ridge up to about 5 % of each matrix's
            largest row sum of ``|mat|``; a larger one raises
            ``ValueError`` (checked with one reduction of ``mat``).
            Defaults to 0.01.
        impl (str): As for :func:`gaussian_kernel`. Defaults to
            ``'reference'``.

    Returns:
        Tensor: ``(..., m, m)``.
    """
    check_newton_matrix(mat)
    iters = check_newton_iters(iters, 'iters', 'newton_inverse')
    ridge = check_newton_ridge(mat, ridge)
    backend = get_backend(resolve_impl(impl, mat.device.type,
                                       compute_dtype(mat)))
    return backend.newton_inverse(mat, iters, ridge)
