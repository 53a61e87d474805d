# Copyright (c) soft_mm contributors. All rights reserved.
"""Convert an official SOFT checkpoint (fudan-zvg/SOFT) to soft_mm.

Example::

    python tools/model_converters/soft2mmpretrain.py \
        soft_tiny.pth.tar checkpoints/soft-tiny_official_in1k.pth

The converted file holds ``{'state_dict', 'meta'}`` with ImageClassifier
names; the tool prints which config it fits. EMA weights are taken when the
file has them (``--no-ema`` takes ``state_dict``). The architecture is read
from the tensor shapes; plain SOFT vs SOFT-Norm is not visible in the keys,
so say ``--norm`` for SOFT-Norm weights.
"""
import argparse
import sys

from soft_mm.checkpoint import (CHECKPOINT_FORMATS, CheckpointError,
                                check_destination, load_official_checkpoint,
                                save_checkpoint_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official SOFT checkpoint to soft_mm '
        '(mmpretrain) format.')
    parser.add_argument('src', help='official .pth / .pth.tar file')
    parser.add_argument(
        'dst', help='output file (.pth, or .safetensors: tensors only, no '
        'pickle)')
    parser.add_argument(
        '--format', choices=sorted(CHECKPOINT_FORMATS),
        help='output format (default: from the suffix of dst)')
    parser.add_argument(
        '--no-ema',
        action='store_true',
        help='take "state_dict" instead of the default "state_dict_ema"')
    parser.add_argument(
        '--norm',
        action='store_true',
        help='the weights are SOFT-Norm (cannot be told from the keys)')
    return parser.parse_args(argv)


def config_hint(meta: dict) -> str:
    """Tell the user which config matches a converted checkpoint.

    Args:
        meta (dict): The ``meta`` of a converted checkpoint.

    Returns:
        str: One or more lines for the terminal.
    """
    norm = 'soft-norm' if meta['attn_norm'] else 'soft'
    lines = []
    if meta['arch_name']:
        lines.append(f"model: {norm}-{meta['arch_name']} -> use "
                     f"configs/_base_/models/soft/{norm}-{meta['arch_name']}"
                     '.py')
    else:
        lines.append(
            f'model: a custom {norm} arch (depths {meta["arch"]["depths"]}, '
            'no zoo name matches) -> use a soft config with\n'
            f'    model.backbone.arch = {meta["arch"]!r}')
    overrides = []
    if not meta['attn_norm']:
        overrides.append('attn_norm=False')
    else:
        overrides.append('attn_norm=True')
    if not meta['conv_bias']:
        overrides.append('conv_bias=False')
    lines.append('backbone settings: ' + ', '.join(overrides))
    if meta['num_classes'] is not None and meta['num_classes'] != 1000:
        lines.append(f'head: num_classes={meta["num_classes"]}')
    lines.append('note: plain SOFT and SOFT-Norm have the same keys; this '
                 'file was converted as ' +
                 ('SOFT-Norm (--norm)' if meta['attn_norm'] else
                  'plain SOFT (pass --norm for SOFT-Norm weights)'))
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_destination(args.src, args.dst)
        ckpt = load_official_checkpoint(
            args.src, use_ema=not args.no_ema, attn_norm=args.norm)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = ckpt['meta']
    try:
        save_checkpoint_file(ckpt, args.dst, args.format)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'read {len(ckpt["state_dict"])} tensors from '
          f'{meta["source_entry"]} of {args.src}')
    if meta['source_entry'] == 'state_dict' and not args.no_ema:
        print('note: the file has no EMA weights; took "state_dict"')
    if meta['filled']:
        print(f'note: {len(meta["filled"])} BatchNorm num_batches_tracked '
              'counters were absent and set to 0 (unused at inference)')
    print(config_hint(meta))
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
