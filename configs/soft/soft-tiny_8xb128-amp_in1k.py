# The seed recipe in mixed precision: fp16 with a dynamic loss scale (the
# seed used fp16 everywhere with a static scale of 1024). soft_mm keeps the
# landmark inverse and the kernel epilogue in fp32 under autocast.
_base_ = './soft-tiny_8xb128_in1k.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
