# ImageNet-1k, the seed recipe (MindSpore port, 78.44 % top-1;
# docs/design.md#training-recipes): RandomResizedCrop 224 with area (0.05, 1)
# bilinear, horizontal flip, AutoAugment (ImageNet policy); Mixup alpha 0.2 (no
# CutMix) as the batch augment; eval: resize the short side to 256 bilinear,
# center crop 224. 128 images per device (8 devices x 128 = 1024). Label
# smoothing 0.1 is the head's loss: see configs/soft/*.py.
#
# Data layout (mmpretrain's ImageNet): either class folders
#   data/imagenet/{train,val}/<wnid>/*.JPEG
# or annotation files
#   data/imagenet/meta/{train,val}.txt  ("relative/path.JPEG <label>" lines)
# next to data/imagenet/{train,val}/; meta/<split>.txt is used when present.
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    num_classes=1000,
    # RGB ImageNet statistics.
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,  # images are loaded as BGR
    batch_augments=dict(augments=[dict(type='Mixup', alpha=0.2)]),
)

bgr_mean = data_preprocessor['mean'][::-1]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.05, 1.0),
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='AutoAugment',
        policies='imagenet',
        hparams=dict(
            pad_val=[round(x) for x in bgr_mean], interpolation='bilinear')),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
