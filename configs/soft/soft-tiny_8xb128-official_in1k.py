# SOFT tiny on ImageNet-1k with the official recipe (the authors' timm/DeiT-
# based code; docs/design.md#training-recipes): global batch 1024 (8 devices x
# 128), AdamW lr 0.001, 300 epochs, RandAugment + random erasing +
# Mixup/CutMix, label smoothing 0.1, drop path 0.1, grad clip 1.0, EMA 0.99996.
_base_ = [
    '../_base_/models/soft/soft-tiny.py',
    '../_base_/datasets/imagenet_bs128_soft_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_soft.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(drop_path_rate=0.1),
    head=dict(
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
)
