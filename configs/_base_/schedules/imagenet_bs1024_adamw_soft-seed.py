# The seed's schedule (MindSpore port; docs/design.md#training-recipes) at a
# global batch of 1024: AdamW lr 2.75e-3, wd 0.05, betas (0.9, 0.999); 15
# warm-up epochs rising linearly from 0, then cosine to 0 at epoch 300, both
# per iteration. No weight decay on parameters whose name contains "bias" --
# the seed's filter "beta,bias": biases and LayerNorm/BatchNorm shifts; norm
# scales and position/cls tokens are decayed, as in the seed.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=2.75e-3,
        weight_decay=0.05,
        eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(custom_keys={'bias': dict(decay_mult=0.0)}),
)

warmup_epochs = 15
max_epochs = 300
param_scheduler = [
    # mmengine's LinearLR scales multiplicatively, so it cannot start at
    # exactly 0: 1e-6 of the peak (2.75e-9) stands for the seed's 0.
    dict(
        type='LinearLR',
        start_factor=1e-6,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=0.0,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The lr above is for 1024 images per step; `--auto-scale-lr` rescales it
# linearly for another total batch (devices x batch_size).
auto_scale_lr = dict(base_batch_size=1024)

custom_hooks = [
    # Resume continues the random streams (mmengine does not save them).
    # Average the BatchNorm running stats of the ranks after each epoch,
    # so every rank validates (and the checkpoint holds) one model.
    dict(type='SyncBuffersHook'),
    dict(type='RNGStateHook'),
    # Stop at the first NaN/inf loss instead of training on garbage.
    dict(type='StopOnInvalidLossHook', interval=1),
]
