# Copyright (c) soft_mm contributors. All rights reserved.
"""Export a classifier to ONNX and check it with onnxruntime.

Example::

    python tools/deployment/pytorch2onnx.py \
        configs/_base_/models/soft/soft-tiny.py soft-tiny.pth \
        --shape 224 224 --dynamic-batch --output-file soft-tiny.onnx

SOFT's attention is exported through its decomposition (plain matmul, exp
and the 20 unrolled Newton steps; ``attn_impl='reference'``), so no custom
ONNX op is needed. After export the file is run with onnxruntime on a
random batch and compared with PyTorch: the tool fails (exit 1) if the
largest absolute difference of the logits exceeds ``--tolerance``.
"""
import argparse
import copy
import sys
import warnings

import torch

from soft_mm.apis.deploy import (add_export_arguments, max_abs_diff,
                                 prepare_export, report_export_check)
from soft_mm.checkpoint import CheckpointError
from soft_mm.runner import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an mmpretrain classifier to ONNX')
    add_export_arguments(parser)
    parser.add_argument('--output-file', default='tmp.onnx')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset')
    parser.add_argument(
        '--dynamic-batch', action='store_true',
        help='make the batch axis dynamic (checked with batch 2)')
    return parser.parse_args(argv)


def export_onnx(module, dummy, path, opset, dynamic_batch):
    """Export ``module`` with the TorchScript-based exporter.

    A deep copy is exported: the exporter folds BatchNorm into the
    preceding conv in place, which would change the module used as the
    reference afterwards.
    """
    dynamic_axes = ({'input': {0: 'batch'}, 'logits': {0: 'batch'}}
                    if dynamic_batch else None)
    with warnings.catch_warnings():
        # Shape-dependent Python branches become constants: expected, the
        # input size is fixed (only the batch is dynamic).
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            copy.deepcopy(module), (dummy, ),
            path,
            input_names=['input'],
            output_names=['logits'],
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            dynamo=False)


def check_onnx(module, path, shape, batch, seed):
    """Run the file with onnxruntime and PyTorch on one random batch."""
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(onnx.load(path))
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, 3, *shape, generator=gen)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    out = session.run(None, {'input': x.numpy()})[0]
    with torch.no_grad():
        ref = module(x)
    return max_abs_diff(out, ref)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        module, dummy = prepare_export(args, args.output_file)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    export_onnx(module, dummy, args.output_file, args.opset,
                args.dynamic_batch)
    batch = 2 if args.dynamic_batch else 1
    diff = check_onnx(module, args.output_file, args.shape, batch, args.seed)
    h, w = args.shape
    print(f'exported {args.output_file} (opset {args.opset}, input '
          f'{"N" if args.dynamic_batch else 1}x3x{h}x{w})')
    return report_export_check(
        args.output_file, diff, args.tolerance,
        f'onnxruntime vs PyTorch on a random batch of {batch}')


if __name__ == '__main__':
    sys.exit(main())
