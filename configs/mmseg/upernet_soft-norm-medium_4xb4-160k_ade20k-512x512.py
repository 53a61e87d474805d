# UPerNet with a SOFT-Norm medium backbone on ADE20K; everything else as in
# the small config.
_base_ = './upernet_soft-norm-small_4xb4-160k_ade20k-512x512.py'

checkpoint = 'checkpoints/soft-norm-medium_in1k.pth'  # noqa

model = dict(
    backbone=dict(
        arch='medium',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=[64, 128, 288, 512]),
    auxiliary_head=dict(in_channels=288))
