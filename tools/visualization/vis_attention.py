# Copyright (c) soft_mm contributors. All rights reserved.
"""Draw what SOFT attention gives one query position over an image.

Example::

    python tools/visualization/vis_attention.py demo/digit.png \
        configs/soft/soft-tiny_1xb64_digits.py work_dirs/.../best.pth \
        --query 0.5 0.5 --out attention.png

The image goes through the config's test pipeline; for the token under
``--query`` (y, x: fractions of the image height and width) the tool
computes the row of SOFT's ``A B^-1 A^T`` in one block of every SOFT stage
and writes a PNG: one row per stage, one column per head, each head's
weights over the image the model saw, the query marked with a cross.
"""
import argparse
import os
import os.path as osp
import sys

import cv2

from soft_mm.apis.attention_maps import (render_attention_grid,
                                         soft_attention_maps)
from soft_mm.apis.inference import (ImageError, add_image_model_arguments,
                                    inferencer_from_args)
from soft_mm.checkpoint import CheckpointError
from soft_mm.runner import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='SOFT attention of one query position, as a PNG')
    add_image_model_arguments(parser)
    parser.add_argument(
        '--query', nargs=2, type=float, default=(0.5, 0.5),
        metavar=('Y', 'X'),
        help='query position, fractions of the image height and width in '
        '[0, 1] (default: the centre)')
    parser.add_argument(
        '--block', type=int, default=-1,
        help='block of each stage (Python index, default -1: the last)')
    parser.add_argument('--out', default='attention.png', help='PNG to write')
    parser.add_argument(
        '--cell', type=int, default=160, help='size of each picture (px)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        inferencer = inferencer_from_args(args)
        model = inferencer.model
        data = next(inferencer.preprocess([args.img]))
        # The image as the model saw it (after the test pipeline), BGR.
        seen = data['inputs'][0].permute(1, 2, 0).numpy().copy()
        inputs = model.data_preprocessor(data, False)['inputs']
        maps = soft_attention_maps(model, inputs, args.query, args.block)
        picture = render_attention_grid(seen, maps, args.query, args.cell)
    except (ImageError, ConfigError, CheckpointError, FileNotFoundError,
            ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if not cv2.imwrite(args.out, picture):
        print(f'error: {args.out}: cannot write the picture', file=sys.stderr)
        return 1
    for amap in maps:
        h, w = amap.hw_shape
        print(f'stage {amap.stage + 1} block {amap.block + 1}: {h}x{w} '
              f'tokens, query token {amap.query_token}, '
              f'{amap.weights.shape[0]} heads')
    print(f'attention picture saved to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
