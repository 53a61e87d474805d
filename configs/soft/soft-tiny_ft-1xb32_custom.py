# Fine-tune SOFT-tiny on your own images: a folder with one sub-folder per
# class (or an annotation file), starting from the authors' checkpoint or any
# soft_mm checkpoint. Self-contained (no _base_): copy it anywhere and edit
# the lines marked EDIT; the walk-through is docs/finetune.md.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['soft_mm'], allow_failed_imports=False)

# EDIT: your data, in mmpretrain's CustomDataset layout:
#   data_root/train/<class>/*.jpg|png   data_root/val/<class>/*.jpg|png
# (or data_root/meta/train.txt, meta/val.txt: "relative/path.jpg label").
data_root = 'data/custom'
# EDIT: the number of classes (class sub-folders).
num_classes = 10
# The weights to start from: the authors' file (converted on load), or a
# soft_mm checkpoint (.pth / .safetensors). Every backbone tensor must come
# from it (the run fails otherwise); the log lists what was loaded, what was
# resized and what of the file was not used (its 1000-class head).
pretrained = 'soft-official://checkpoints/soft_tiny.pth.tar'
# Input side; the checkpoint's position tables (224) are resized to it once,
# when they are loaded.
img_size = 224

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SOFT',
        arch='tiny',
        img_size=img_size,
        drop_path_rate=0.1,
        # 0 freezes the stem and stage 1, ... 3 the whole backbone.
        frozen_stages=-1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=None,
    # A new head for the new classes (initialised here, not loaded).
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        topk=(1, )))

data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size * 256 // 224, edge='short'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Layer-wise lr decay: the head trains at lr, each block below it at 0.75x
# the one above (SOFT.get_layer_depth gives the depths).
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embeds': dict(decay_mult=0.0),
        }))
max_epochs = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs,
         T_max=max_epochs - 1, eta_min=1e-6, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=2,
        save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='StopOnInvalidLossHook'),
]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
visualizer = dict(
    type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
