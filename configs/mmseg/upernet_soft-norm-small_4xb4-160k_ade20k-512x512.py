# UPerNet with a SOFT-Norm small backbone on ADE20K, 512x512 crops, 160k
# iterations on 4 GPUs x 4 images. Run it with mmseg's own tools (see
# configs/mmseg/README.md); the backbone and the optimizer's decay rules
# are shared with the other dense configs
# (configs/_base_/models/soft/soft-norm_dense-backbone.py):
#   mim train mmseg \
#       configs/mmseg/upernet_soft-norm-small_4xb4-160k_ade20k-512x512.py
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
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
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150))

# AdamW with the usual transformer settings (as Swin's UPerNet).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=_base_.pop('soft_dense_paramwise'))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False),
]

# 4 GPUs x 4 images (the ADE20K base config's batch size).
train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
