# The seed recipe in bfloat16 autocast (Ampere+ GPUs, Ascend 910B); bf16
# needs no loss scaling.
_base_ = './soft-tiny_8xb128_in1k.py'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
