# Copyright (c) soft_mm contributors. All rights reserved.
"""Classify one image with mmpretrain's ImageClassificationInferencer.

Example::

    python demo/image_demo.py demo/digit.png \
        configs/soft/soft-tiny_1xb64_digits.py work_dirs/.../best.pth \
        --topk 3 --show-dir vis/

Prints the top-k labels and scores; ``--show-dir`` saves the image with the
prediction drawn on it. The checkpoint is loaded strictly (a checkpoint of
another architecture is an error, not a silent random model); original
SOFT files load through ``soft-official://`` / ``soft-mindspore://``.
"""
import argparse
import os.path as osp
import sys

from soft_mm.apis.inference import (ImageError, add_image_model_arguments,
                                    inferencer_from_args)
from soft_mm.checkpoint import CheckpointError
from soft_mm.runner import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Image classification demo')
    add_image_model_arguments(parser)
    parser.add_argument('--topk', type=int, default=5, help='labels to show')
    parser.add_argument(
        '--show-dir', default=None,
        help='save the image with the prediction drawn to this folder')
    args = parser.parse_args(argv)
    if args.topk < 1:  # [:-1] would print every class but one
        parser.error(f'--topk must be >= 1, got {args.topk}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        inferencer = inferencer_from_args(args)
        result = inferencer(args.img, show_dir=args.show_dir)[0]
    except (ImageError, ConfigError, CheckpointError,
            FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    scores = result['pred_scores']
    order = scores.argsort()[::-1][:args.topk]
    classes = inferencer.classes
    print(f'{args.img}: top-{len(order)}')
    for rank, idx in enumerate(order, 1):
        name = classes[idx] if classes else f'class {idx}'
        print(f'  {rank}. {name} (label {idx}): {scores[idx]:.4f}')
    if args.show_dir:
        out = osp.join(args.show_dir,
                       osp.splitext(osp.basename(args.img))[0] + '.png')
        print(f'visualization saved to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
