# Mask R-CNN with a SOFT-Norm large backbone, 1x schedule on COCO; everything
# else as in the tiny config.
_base_ = './mask-rcnn_soft-norm-tiny_fpn_1x_coco.py'

checkpoint = 'checkpoints/soft-norm-large_in1k.pth'  # noqa

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint=checkpoint)))
