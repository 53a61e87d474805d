# Semantic FPN with a SOFT-Norm small backbone on ADE20K, 512x512 crops, 40k
# iterations on 4 GPUs x 4 images (PVT's Semantic FPN recipe). Run it with
# mmseg's own tools (see configs/mmseg/README.md); the backbone and the
# optimizer's decay rules are shared with the other dense configs
# (configs/_base_/models/soft/soft-norm_dense-backbone.py):
#   mim train mmseg \
#       configs/mmseg/fpn_soft-norm-small_4xb4-40k_ade20k-512x512.py
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    '../_base_/models/soft/soft-norm_dense-backbone.py',
]

# A soft_mm ImageNet classifier checkpoint of the same arch (its keys start
# with 'backbone.'). Nothing is downloaded.
checkpoint = 'checkpoints/soft-norm-small_in1k.pth'  # noqa

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _base_.pop('soft_dense_backbone'),
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 320, 512]),
    decode_head=dict(num_classes=150))

# AdamW + poly decay as PVT's Semantic FPN.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    paramwise_cfg=_base_.pop('soft_dense_paramwise'))
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=40000,
        by_epoch=False),
]

# 4 GPUs x 4 images (the ADE20K base config's batch size).
train_dataloader = dict(batch_size=4)
