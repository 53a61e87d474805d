# SOFT-tiny on ImageNet-1k with the seed recipe (MindSpore port on 8 Ascend
# 910, 78.44 % top-1; docs/design.md#training-recipes): 8 devices x 128 images,
# AdamW lr 2.75e-3, 300 epochs, AutoAugment + Mixup 0.2, label smoothing 0.1,
# no drop path. The seed trained in fp16 throughout; this config is fp32 (see
# the -amp variants).
#   tools/dist_train.sh configs/soft/soft-tiny_8xb128_in1k.py 8
_base_ = [
    '../_base_/models/soft/soft-tiny.py',
    '../_base_/datasets/imagenet_bs128_soft-seed_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_soft-seed.py',
    '../_base_/default_runtime.py',
]

model = dict(
    # The seed trains without stochastic depth.
    backbone=dict(drop_path_rate=0.0),
    head=dict(
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
)
