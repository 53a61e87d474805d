# RetinaNet with a SOFT-Norm medium backbone, 1x schedule on COCO; everything
# else as in the tiny config.
_base_ = './retinanet_soft-norm-tiny_fpn_1x_coco.py'

checkpoint = 'checkpoints/soft-norm-medium_in1k.pth'  # noqa

model = dict(
    backbone=dict(
        arch='medium',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 288, 512]))
