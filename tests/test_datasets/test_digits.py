# Copyright (c) soft_mm contributors. All rights reserved.
import numpy as np
import pytest
from mmpretrain.registry import DATASETS

from soft_mm.datasets import Digits


def test_split_is_disjoint_stratified_and_deterministic():
    train, test = Digits(split='train'), Digits(split='test')
    assert len(train) + len(test) == 1797
    train_ids = {
        train.get_data_info(i)['digit_idx'] for i in range(len(train))}
    test_ids = {test.get_data_info(i)['digit_idx'] for i in range(len(test))}
    assert not train_ids & test_ids
    labels = np.array(test.get_gt_labels())
    counts = np.bincount(labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # ~20 % per class
    again = Digits(split='test')
    assert again.get_data_info(5)['digit_idx'] == test.get_data_info(
        5)['digit_idx']
    other = Digits(split='test', seed=1)
    assert [other.get_data_info(i)['digit_idx'] for i in range(20)] != [
        test.get_data_info(i)['digit_idx'] for i in range(20)]


def test_samples_feed_mmpretrain_pipeline():
    ds = DATASETS.build(
        dict(
            type='Digits',
            split='train',
            pipeline=[
                dict(type='Resize', scale=(32, 32)),
                dict(type='PackInputs')
            ]))
    sample = ds[0]
    assert sample['inputs'].shape == (3, 32, 32)
    assert sample['data_samples'].gt_label.item() in range(10)
    raw = ds.get_data_info(0)['img']
    assert raw.dtype == np.uint8 and raw.shape == (8, 8, 3)
    assert raw.max() > 200  # intensities rescaled from 0-16 to 0-255
    assert ds.metainfo['classes'] == tuple('0123456789')


def test_bad_arguments():
    with pytest.raises(ValueError, match='split'):
        Digits(split='val')
    with pytest.raises(ValueError, match='test_ratio'):
        Digits(test_ratio=1.5)
