# Copyright (c) soft_mm contributors. All rights reserved.
"""First-order backward formulas that refuse a double backward."""
import functools
from typing import Callable

import torch


def first_order_only(what: str) -> Callable:
    """Decorate a backward formula (``backward(ctx, *grads)``) that has no
    derivative of its own: an analytic gradient (the Newton inverse's), or
    a kernel.

    A double backward (``create_graph=True``, the only time autograd runs
    a backward with grad mode on) raises a ``RuntimeError`` naming
    ``what``. ``torch.autograd.function.once_differentiable`` is not
    enough: where the incoming gradients do not require grad it returns
    gradients without a graph, and their second-order terms are silently
    zero.

    Args:
        what (str): The operation, for the message.

    Returns:
        Callable: The decorator.
    """

    def decorate(backward: Callable) -> Callable:

        @functools.wraps(backward)
        def wrapped(ctx, *grads):
            if torch.is_grad_enabled():
                raise RuntimeError(
                    f'{what} has first-order gradients only: a double '
                    'backward (create_graph=True, e.g. a gradient penalty) '
                    'is not supported through it')
            return backward(ctx, *grads)

        return wrapped

    return decorate
