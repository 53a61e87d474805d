# SOFT-tiny trained from scratch on scikit-learn's handwritten digits: the
# embedded main job (a few minutes on 2 CPU cores, >= 98 % top-1 held out).
_base_ = [
    '../_base_/models/soft/soft-tiny.py',
    '../_base_/datasets/digits.py',
    '../_base_/default_runtime.py',
]

# At 32x32 the SOFT stages see 8x8, 4x4 and 2x2 tokens: the ImageNet landmark
# ratios [8, 4, 2] would leave one landmark per stage (the Nystrom
# approximation of rank 1). Ratios [4, 2, 1] keep m = 2x2 = 4 landmarks in
# every SOFT stage; the rest is SOFT-tiny.
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # replaces the base's arch='tiny'
            embed_dims=[64, 128, 320, 512],
            num_heads=[2, 4, 10, 16],
            depths=[1, 2, 3, 2],
            sr_ratios=[4, 2, 1]),
        drop_path_rate=0.0),
    head=dict(num_classes=10, topk=(1, )),
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embeds': dict(decay_mult=0.0),
        }),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=11, by_epoch=True, begin=1, end=12,
         eta_min=1e-5),
]
train_cfg = dict(by_epoch=True, max_epochs=12, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=2,
        save_best='accuracy/top1', rule='greater'),
)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
custom_hooks = [
    # Same BN statistics on every rank, so the checkpoint is the model that
    # was validated.
    dict(type='SyncBuffersHook'),
    # Resume continues the random streams too (mmengine does not save them).
    dict(type='RNGStateHook'),
    # Stop at the first NaN/inf loss, naming the step.
    dict(type='StopOnInvalidLossHook'),
]
