# UPerNet with a SOFT-Norm small backbone on ADE20K, 512x512 crops, 160k
# iterations on 4 GPUs x 4 images. Run it with mmseg's own tools (see
# configs/mmseg/README.md):
#   mim train mmseg configs/mmseg/upernet_soft-norm-small_4xb4-160k_ade20k-512x512.py
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

# `import soft_mm` registers SOFT in mmpretrain's MODELS registry; the
# backbone is then reached from mmseg's registry as 'mmpretrain.SOFT'.
custom_imports = dict(imports=['soft_mm'], allow_failed_imports=False)

# A soft_mm ImageNet classifier checkpoint of the same arch (its keys start
# with 'backbone.'). Nothing is downloaded.
checkpoint = 'checkpoints/soft-norm-small_in1k.pth'  # noqa

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SOFT',
        arch='small',
        attn_norm=True,  # SOFT-Norm
        # Bound the landmarks to a 7x7 grid per head: linear cost at
        # 512x512 and above, identical to the official model at 224.
        landmark_grid=7,
        out_indices=(0, 1, 2, 3),
        # Stage 4 runs with its cls token; the token is dropped from the
        # output after the final norm, leaving an NCHW map at stride 32.
        out_type='featmap',
        drop_path_rate=0.2,
        frozen_stages=-1,
        # Keep the stem's BatchNorm statistics from ImageNet (4 images per
        # GPU, no SyncBN inside the backbone).
        norm_eval=True,
        with_cp=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150))

# AdamW with the usual transformer settings (as Swin's UPerNet); no weight
# decay on norms, position tables and the cls token.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            '.pos_embeds': dict(decay_mult=0.),
            '.cls_token': dict(decay_mult=0.),
        }))
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
