# ImageNet-1k, the official recipe (authors' timm/DeiT-based code, 79.3 % top-1
# for SOFT-tiny; docs/design.md#training-recipes): RandomResizedCrop 224 with
# area (0.08, 1) bicubic, horizontal flip, RandAugment rand-m9-mstd0.5-inc1,
# random erasing 0.25 (per-pixel noise); Mixup 0.8 + CutMix 1.0 (one of them
# per batch) as the batch augment; eval: resize the short side to 248 bicubic
# (crop_pct 0.9), center crop 224. 128 images per device by default; the
# configs of the larger archs override the batch size (configs/soft/README.md).
# Label smoothing 0.1 is the head's loss: see configs/soft/*.py.
#
# Data layout, normalisation, loaders and evaluator are the seed recipe's
# (imagenet_bs128_soft-seed_224.py); only the augmentations differ.
_base_ = './imagenet_bs128_soft-seed_224.py'

data_preprocessor = dict(batch_augments=dict(augments=[
    dict(type='Mixup', alpha=0.8),
    dict(type='CutMix', alpha=1.0),
]))

# The base's RGB mean/std in BGR order, for fills on BGR-loaded images.
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(
            pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=248,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
