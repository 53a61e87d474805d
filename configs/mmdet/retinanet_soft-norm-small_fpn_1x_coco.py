# RetinaNet with a SOFT-Norm small backbone, 1x schedule on COCO; everything
# else as in the tiny config.
_base_ = './retinanet_soft-norm-tiny_fpn_1x_coco.py'

checkpoint = 'checkpoints/soft-norm-small_in1k.pth'  # noqa

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint=checkpoint)))
