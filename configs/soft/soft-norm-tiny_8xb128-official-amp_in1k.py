# soft-norm-tiny_8xb128-official_in1k in mixed precision: fp16 autocast with
# a dynamic loss scale (the official run was fp32). soft_mm keeps the
# landmark inverse in fp32.
_base_ = './soft-norm-tiny_8xb128-official_in1k.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
