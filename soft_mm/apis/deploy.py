# Copyright (c) soft_mm contributors. All rights reserved.
"""What the export tools share: the tensor-in/tensor-out wrapper, their
arguments, the exported-vs-PyTorch check, and tracing SOFT's Newton inverse
as plain ops."""
import argparse
import contextlib
import os
import sys

import torch
import torch.nn as nn
from mmengine.config import DictAction
from torch import Tensor

from soft_mm.ops import reference
from soft_mm.runner import load_config
from .inference import build_classifier


class TensorForward(nn.Module):
    """``model(x, mode='tensor')`` as a plain module: images in, logits out.

    Args:
        model (nn.Module): An mmpretrain classifier.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x, mode='tensor')
        if isinstance(out, (tuple, list)):
            out = out[-1]
        return out


def add_export_arguments(parser: argparse.ArgumentParser):
    """The arguments every export tool takes: config, checkpoint, input
    size, tolerance of the reloaded-vs-PyTorch check, overrides, seed."""
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[224, 224],
        metavar=('H', 'W'), help='input size (default 224 224)')
    parser.add_argument(
        '--tolerance', type=float, default=1e-4,
        help='largest allowed |exported - PyTorch| (default 1e-4)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value (mmengine DictAction)')
    parser.add_argument('--seed', type=int, default=0)


def prepare_export(args: argparse.Namespace, output: str):
    """Load the classifier of an export tool's ``args`` and make room for
    ``output``.

    Returns:
        tuple[nn.Module, Tensor]: ``TensorForward`` of the classifier in
        eval mode and a dummy input ``(1, 3, H, W)`` drawn after seeding
        with ``args.seed``.

    Raises:
        CheckpointError, FileNotFoundError: Unreadable config or weights.
    """
    cfg = load_config(args.config, args.cfg_options)
    model = build_classifier(cfg, args.checkpoint)
    module = TensorForward(model).eval()
    torch.manual_seed(args.seed)
    dummy = torch.randn(1, 3, *args.shape)
    if os.path.dirname(output):
        os.makedirs(os.path.dirname(output), exist_ok=True)
    return module, dummy


def report_export_check(output: str, diff: float, tolerance: float,
                        what: str) -> int:
    """Print the exported-vs-PyTorch difference; exit status 1 (with an
    ``error:`` line on stderr) when it exceeds ``tolerance``, else 0."""
    print(f'{what}: max abs diff {diff:.3e} (tolerance {tolerance:.0e})')
    if not diff <= tolerance:
        print(f'error: {output}: exported model differs from PyTorch by '
              f'{diff:.3e} > {tolerance:.0e}', file=sys.stderr)
        return 1
    return 0


def max_abs_diff(a, b) -> float:
    """Largest absolute difference of two arrays/tensors, as a float."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(f'output shapes differ: {tuple(a.shape)} vs '
                         f'{tuple(b.shape)}')
    return float((a - b).abs().max())


@contextlib.contextmanager
def newton_as_plain_ops():
    """Run SOFT's Newton inverse as plain tensor ops inside this block.

    The reference op wraps the iteration in an autograd Function (for its
    analytic backward); TorchScript cannot serialise Python Functions. For
    inference exports the forward alone is needed, which is exactly
    :func:`soft_mm.ops.reference.newton_iterate` without its no_grad
    decorator. The patch is undone on exit.
    """
    original = reference.newton_inverse
    iterate = getattr(reference.newton_iterate, '__wrapped__',
                      reference.newton_iterate)

    def newton_forward_only(mat, iters=reference.NEWTON_ITERS,
                            ridge=reference.NEWTON_RIDGE):
        return iterate(mat, iters, ridge)

    reference.newton_inverse = newton_forward_only
    try:
        yield
    finally:
        reference.newton_inverse = original
