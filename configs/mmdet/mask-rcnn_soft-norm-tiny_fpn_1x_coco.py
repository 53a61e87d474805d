# Mask R-CNN with a SOFT-Norm tiny backbone, 1x schedule on COCO (8 GPUs x 2
# images). Run it with mmdet's own tools (see configs/mmdet/README.md):
#   mim train mmdet configs/mmdet/mask-rcnn_soft-norm-tiny_fpn_1x_coco.py
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

# `import soft_mm` registers SOFT in mmpretrain's MODELS registry; the
# backbone is then reached from mmdet's registry as 'mmpretrain.SOFT'.
custom_imports = dict(imports=['soft_mm'], allow_failed_imports=False)

# A soft_mm ImageNet classifier checkpoint of the same arch (its keys start
# with 'backbone.'). Nothing is downloaded.
checkpoint = 'checkpoints/soft-norm-tiny_in1k.pth'  # noqa

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SOFT',
        arch='tiny',
        attn_norm=True,  # SOFT-Norm
        # Bound the landmarks to a 7x7 grid per head: linear cost at
        # detection resolution, identical to the official model at 224.
        landmark_grid=7,
        out_indices=(0, 1, 2, 3),
        # Stage 4 runs with its cls token; the token is dropped from the
        # output after the final norm, leaving an NCHW map at stride 32.
        out_type='featmap',
        drop_path_rate=0.1,
        frozen_stages=-1,
        # Keep the stem's BatchNorm statistics from ImageNet: 2 images per
        # GPU are too few to estimate them.
        norm_eval=True,
        with_cp=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 320, 512]))

# AdamW with the usual transformer settings; no weight decay on norms,
# position tables and the cls token.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            '.pos_embeds': dict(decay_mult=0.),
            '.cls_token': dict(decay_mult=0.),
        }))
