# Copyright (c) soft_mm contributors. All rights reserved.
"""Export a classifier with TorchScript (``torch.jit.trace``) or
``torch.export`` and check it against eager PyTorch.

Example::

    python tools/deployment/pytorch2torchscript.py \
        configs/_base_/models/soft/soft-tiny.py soft-tiny.pth \
        --shape 224 224 --output-file soft-tiny.pt

``--method trace`` (default) writes a TorchScript file (``torch.jit.load``;
the Newton iteration is traced as plain ops, forward only);
``--method export`` writes a ``torch.export`` program (``.pt2``,
``torch.export.load``). Both trace SOFT's reference decomposition. The saved
file is reloaded and run on a fresh random input; the tool fails (exit 1)
if it differs from eager PyTorch by more than ``--tolerance``.
"""
import argparse
import copy
import sys
import warnings

import torch

from soft_mm.apis.deploy import (add_export_arguments, max_abs_diff,
                                 newton_as_plain_ops, prepare_export,
                                 report_export_check)
from soft_mm.checkpoint import CheckpointError
from soft_mm.runner import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a classifier with TorchScript / torch.export')
    add_export_arguments(parser)
    parser.add_argument(
        '--method', choices=['trace', 'export'], default='trace',
        help='torch.jit.trace (.pt) or torch.export (.pt2)')
    parser.add_argument('--output-file', default=None)
    return parser.parse_args(argv)


def export_and_reload(module, dummy, path, method):
    """Save ``module`` traced on ``dummy`` to ``path``; return the reloaded
    callable."""
    module = copy.deepcopy(module)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        if method == 'trace':
            # TorchScript cannot hold the Newton autograd Function.
            with newton_as_plain_ops():
                traced = torch.jit.trace(module, (dummy, ), check_trace=False)
            torch.jit.save(traced, path)
            return torch.jit.load(path)
        program = torch.export.export(module, (dummy, ))
        torch.export.save(program, path)
        return torch.export.load(path).module()


def main(argv=None) -> int:
    args = parse_args(argv)
    output = args.output_file or ('tmp.pt' if args.method == 'trace' else
                                  'tmp.pt2')
    try:
        module, dummy = prepare_export(args, output)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    loaded = export_and_reload(module, dummy, output, args.method)
    x = torch.randn(1, 3, *args.shape)
    with torch.no_grad():
        diff = max_abs_diff(loaded(x), module(x))
    return report_export_check(
        output, diff, args.tolerance,
        f'exported {output} ({args.method}), reloaded and compared on a '
        f'random input')


if __name__ == '__main__':
    sys.exit(main())
