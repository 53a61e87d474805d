# Copyright (c) soft_mm contributors. All rights reserved.
"""Convert the seed's MindSpore SOFT ``.ckpt`` to soft_mm (no MindSpore
needed).

Example::

    python tools/model_converters/mindspore2mmpretrain.py \
        SOFT_tiny.ckpt checkpoints/soft-tiny_mindspore-port_in1k.pth

The result loads into ``configs/soft/soft-tiny_mindspore-port_in1k.py``,
whose backbone reproduces the port's numerics (no conv bias, tanh GELU
everywhere, stage-4 LayerNorm eps 1e-7). fp16 tensors are widened to fp32.
"""
import argparse
import sys

from soft_mm.checkpoint import (CHECKPOINT_FORMATS, CheckpointError,
                                check_destination, load_mindspore_checkpoint,
                                save_checkpoint_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a MindSpore SOFT checkpoint to soft_mm '
        '(mmpretrain) format.')
    parser.add_argument('src', help='MindSpore .ckpt file')
    parser.add_argument(
        'dst', help='output file (.pth, or .safetensors: tensors only, no '
        'pickle)')
    parser.add_argument(
        '--format', choices=sorted(CHECKPOINT_FORMATS),
        help='output format (default: from the suffix of dst)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_destination(args.src, args.dst)
        ckpt = load_mindspore_checkpoint(args.src)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = ckpt['meta']
    try:
        save_checkpoint_file(ckpt, args.dst, args.format)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'converted {len(ckpt["state_dict"])} tensors from {args.src} '
          f'(stored as {", ".join(meta["source_dtypes"])}; saved as '
          'float32); skipped '
          f'{len(meta["skipped"])} unused or training-state tensors')
    name = meta['arch_name'] or f'custom arch {meta["arch"]}'
    print(f'model: {name}, {meta["num_classes"]} classes -> use '
          'configs/soft/soft-tiny_mindspore-port_in1k.py'
          if meta['arch_name'] == 'tiny' else
          f'model: {name} -> use a config like '
          'configs/soft/soft-tiny_mindspore-port_in1k.py with '
          'model.backbone.arch set accordingly')
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
