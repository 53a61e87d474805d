# Copyright (c) soft_mm contributors. All rights reserved.
"""Write scikit-learn's handwritten digits as PNG files in class folders,
the layout mmpretrain's ``CustomDataset`` reads (and most users have)::

    OUT/train/<digit>/<index>.png
    OUT/val/<digit>/<index>.png

The train / val split is ``soft_mm.datasets.Digits``'s (1 438 / 359 images,
class-stratified, the same on every machine). Example: the two halves of
the fine-tuning walk-through (docs/finetune.md)::

    python tools/dataset_converters/digits_to_folders.py data/digits04 \\
        --classes 0 1 2 3 4
    python tools/dataset_converters/digits_to_folders.py data/digits59 \\
        --classes 5 6 7 8 9 --train-per-class 20

``--rotations`` writes every image four times, turned by 0, 90, 180 and 270
degrees (counter-clockwise), each turn its own class ``<digit>_r<angle>``
(``0_r000`` ... ``4_r270``: 20 classes for five digits). A richer
pre-training task than the digits alone (whose top features collapse onto
the five classes and do not carry over to new digits, docs/finetune.md)::

    python tools/dataset_converters/digits_to_folders.py data/digits04rot \\
        --classes 0 1 2 3 4 --train-per-class 40 --rotations

``--flips`` also writes every image mirrored (left-right) before it is
turned, its own class ``<digit>_m`` (``<digit>_r<angle>_m`` with
``--rotations``: the eight symmetries of the square, 40 classes for five
digits).
"""
import argparse
import itertools
import os
import os.path as osp
import sys

import cv2
import numpy as np

from soft_mm.datasets import Digits


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the digits as PNGs in class folders')
    parser.add_argument('out', help='output folder (train/ and val/ inside)')
    parser.add_argument('--classes', type=int, nargs='+',
                        default=list(range(10)), choices=range(10),
                        help='digits to write (default: all)')
    parser.add_argument('--train-per-class', type=int, default=None,
                        help='at most this many training images per class '
                        '(the first of the fixed split), for small budgets')
    parser.add_argument('--size', type=int, default=32,
                        help='side of the written images (default 32)')
    parser.add_argument('--rotations', action='store_true',
                        help='also write each image turned by 90, 180 and '
                        '270 degrees, each turn its own class '
                        '<digit>_r<angle> (a richer pre-training task)')
    parser.add_argument('--flips', action='store_true',
                        help='also write each image mirrored left-right '
                        '(before any turn), its own class <digit>_m or '
                        '<digit>_r<angle>_m')
    args = parser.parse_args(argv)
    if args.train_per_class is not None and args.train_per_class < 1:
        parser.error('--train-per-class must be >= 1')
    if args.size < 8:
        parser.error('--size must be >= 8 (the scans are 8x8)')
    return args


def write_split(split: str, out: str, classes, size: int,
                per_class=None, rotations: bool = False,
                flips: bool = False) -> int:
    """Write one split; returns the number of images written (each turn or
    mirror of an image counted once)."""
    written = {c: 0 for c in classes}
    dataset = Digits(split=split)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        label = info['gt_label']
        if label not in written or (per_class is not None
                                    and written[label] >= per_class):
            continue
        img = cv2.resize(info['img'], (size, size),
                         interpolation=cv2.INTER_LINEAR)
        for turns, mirrored in itertools.product(
                range(4 if rotations else 1), (False, True) if flips
                else (False, )):
            name = str(label) + (f'_r{90 * turns:03d}' if rotations else '')
            name += '_m' if mirrored else ''
            folder = osp.join(out, 'val' if split == 'test' else 'train',
                              name)
            os.makedirs(folder, exist_ok=True)
            path = osp.join(folder, f'{info["digit_idx"]:04d}.png')
            turned = np.ascontiguousarray(
                np.rot90(img[:, ::-1] if mirrored else img, turns))
            if not cv2.imwrite(path, turned):
                raise OSError(f'could not write {path}')
        written[label] += 1
    return sum(written.values())


def main(argv=None) -> int:
    args = parse_args(argv)
    n_train = write_split('train', args.out, args.classes, args.size,
                          args.train_per_class, args.rotations, args.flips)
    n_val = write_split('test', args.out, args.classes, args.size,
                        rotations=args.rotations, flips=args.flips)
    copies = (4 if args.rotations else 1) * (2 if args.flips else 1)
    turns = f', each in {copies} copies,' if copies > 1 else ''
    folder = '<digit>' + ('_r<angle>' if args.rotations else '') + (
        '[_m]' if args.flips else '')
    print(f'wrote {n_train} training and {n_val} validation images{turns} '
          f'of digits {args.classes} to {args.out}/{{train,val}}/{folder}/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
