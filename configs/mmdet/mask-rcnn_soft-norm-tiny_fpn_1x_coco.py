# Mask R-CNN with a SOFT-Norm tiny backbone, 1x schedule on COCO (8 GPUs x 2
# images). Run it with mmdet's own tools (see configs/mmdet/README.md):
#   mim train mmdet configs/mmdet/mask-rcnn_soft-norm-tiny_fpn_1x_coco.py
# The backbone and the optimizer's decay rules are shared with the other
# dense configs: configs/_base_/models/soft/soft-norm_dense-backbone.py.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/models/soft/soft-norm_dense-backbone.py',
]

# A soft_mm ImageNet classifier checkpoint of the same arch (its keys start
# with 'backbone.'). Nothing is downloaded.
checkpoint = 'checkpoints/soft-norm-tiny_in1k.pth'  # noqa

model = dict(
    backbone=dict(
        _base_.pop('soft_dense_backbone'),
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 320, 512]))

# AdamW with the usual transformer settings.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=_base_.pop('soft_dense_paramwise'))
