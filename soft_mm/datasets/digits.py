# Copyright (c) soft_mm contributors. All rights reserved.
"""scikit-learn's handwritten digits as an mmpretrain dataset (no download)."""
from typing import List

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

SPLITS = ('train', 'test')


@DATASETS.register_module()
class Digits(BaseDataset):
    """The 1 797 8x8 handwritten digits (UCI) that ship with scikit-learn.

    Real scanned digits from 43 writers, 10 classes. The split is a fixed,
    class-stratified shuffle, identical on every machine and process.
    Samples are ``uint8`` 8x8x3 images (grey replicated to RGB, intensities
    0-16 rescaled to 0-255) with ``gt_label``, so mmpretrain's usual
    transforms (``Resize``, ``RandomCrop``, ``PackInputs``) apply.

    Args:
        split (str): ``'train'`` (1 438 images) or ``'test'`` (359 images).
            Defaults to ``'train'``.
        test_ratio (float): Share of each class held out. Defaults to 0.2.
        seed (int): Seed of the split. Defaults to 0.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``indices``, ``test_mode`` ...).
    """
    METAINFO = {'classes': tuple(str(i) for i in range(10))}

    def __init__(self,
                 split: str = 'train',
                 test_ratio: float = 0.2,
                 seed: int = 0,
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'Digits: unknown split {split!r}, choose from '
                             f'{SPLITS}')
        if not 0 < test_ratio < 1:
            raise ValueError(
                f'Digits: test_ratio must be in (0, 1), got {test_ratio}')
        self.split = split
        self.test_ratio = test_ratio
        self.seed = seed
        kwargs.setdefault('test_mode', split == 'test')
        super().__init__(ann_file='', **kwargs)

    def split_indices(self, labels: np.ndarray) -> np.ndarray:
        """Indices of this split: per class, a seeded shuffle, head = test."""
        rng = np.random.default_rng(self.seed)
        chosen = []
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            n_test = int(round(len(idx) * self.test_ratio))
            chosen.append(idx[:n_test] if self.split == 'test' else
                          idx[n_test:])
        return np.sort(np.concatenate(chosen))

    def load_data_list(self) -> List[dict]:
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = np.round(digits.images * (255. / 16.)).astype(np.uint8)
        labels = digits.target.astype(np.int64)
        return [
            dict(
                img=np.repeat(images[i][..., None], 3, axis=-1),
                img_shape=images[i].shape,
                ori_shape=images[i].shape,
                gt_label=int(labels[i]),
                digit_idx=int(i)) for i in self.split_indices(labels)
        ]

    def extra_repr(self) -> List[str]:
        return [f'Split: \t{self.split}', f'Test ratio: \t{self.test_ratio}']
