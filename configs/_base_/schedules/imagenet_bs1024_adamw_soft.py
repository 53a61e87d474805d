# The official schedule (authors' timm/DeiT-based code;
# docs/design.md#training-recipes) at a global batch of 1024: AdamW lr 1e-3
# (tiny/small; the larger archs' configs set their own), wd 0.05, eps 1e-8; 10
# warm-up epochs rising linearly from lr 1e-6, then cosine to 5e-5 at epoch
# 300, per iteration; gradient-norm clipping at 1.0; EMA of the weights with
# decay 0.99996 per iteration. No weight decay on 1-D parameters (biases, norm
# weights) and cls_token.
base_lr = 1e-3
warmup_lr = 1e-6
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=base_lr,
        weight_decay=0.05,
        eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        flat_decay_mult=0.0,
        custom_keys={'.cls_token': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=1.0),
)

warmup_epochs = 10
max_epochs = 300
param_scheduler = [
    dict(
        type='LinearLR',
        # Relative to base_lr; a config that changes the lr sets it again.
        start_factor=warmup_lr / base_lr,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=5e-5,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=1024)

custom_hooks = [
    # timm's ModelEmaV2(decay=0.99996): mmengine's momentum is 1 - decay.
    # Validation and the saved `ema_state_dict` use the averaged weights.
    dict(
        type='EMAHook',
        momentum=4e-5,
        update_buffers=True,
        priority='ABOVE_NORMAL'),
    # Average the BatchNorm running stats of the ranks after each epoch,
    # so every rank validates (and the checkpoint holds) one model.
    dict(type='SyncBuffersHook'),
    dict(type='RNGStateHook'),
    dict(type='StopOnInvalidLossHook', interval=1),
]
