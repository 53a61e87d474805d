# The SOFT-Norm backbone and optimizer settings shared by the detection
# (configs/mmdet) and segmentation (configs/mmseg) configs; see
# docs/design.md#dense-prediction.
#
# A dense config lists this file in `_base_` next to the mmdet/mmseg stock
# config and takes the two helper variables below with `_base_.pop(...)`:
#
#   model = dict(backbone=dict(_base_.pop('soft_dense_backbone'), arch=...))
#   optim_wrapper = dict(..., paramwise_cfg=_base_.pop('soft_dense_paramwise'))
#
# Popping (rather than reading `_base_.soft_dense_backbone`) keeps the helper
# names out of the resolved config, which then holds only real keys.

# `import soft_mm` registers SOFT in mmpretrain's MODELS registry; the
# backbone is then reached from mmdet's and mmseg's registries as
# 'mmpretrain.SOFT'.
custom_imports = dict(imports=['soft_mm'], allow_failed_imports=False)

# The stock ResNet backbone is replaced wholesale (`_delete_`). A config adds
# `arch`, `drop_path_rate` and the classifier checkpoint in `init_cfg`.
soft_dense_backbone = dict(
    _delete_=True,
    type='mmpretrain.SOFT',
    attn_norm=True,  # SOFT-Norm
    # Bound the landmarks to a 7x7 grid per head: linear cost at detection
    # and segmentation sizes, identical to the official model at 224.
    landmark_grid=7,
    out_indices=(0, 1, 2, 3),
    # Stage 4 runs with its cls token; the token is dropped from the output
    # after the final norm, leaving an NCHW map at stride 32.
    out_type='featmap',
    frozen_stages=-1,
    # Keep the stem's BatchNorm statistics from ImageNet: 2-4 images per GPU
    # (no SyncBN inside the backbone) are too few to estimate them.
    norm_eval=True,
    with_cp=False)

# No weight decay on norms, position tables and the cls token.
soft_dense_paramwise = dict(
    norm_decay_mult=0.,
    custom_keys={
        '.pos_embeds': dict(decay_mult=0.),
        '.cls_token': dict(decay_mult=0.),
    })
