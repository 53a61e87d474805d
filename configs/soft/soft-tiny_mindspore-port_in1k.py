# SOFT-tiny as the seed's MindSpore port computes it, for checkpoints
# converted with tools/model_converters/mindspore2mmpretrain.py
# (docs/design.md#checkpoint-layouts):
#   python tools/model_converters/mindspore2mmpretrain.py SOFT_tiny.ckpt \
#       checkpoints/soft-tiny_mindspore-port_in1k.pth
#   python tools/test.py configs/soft/soft-tiny_mindspore-port_in1k.py \
#       checkpoints/soft-tiny_mindspore-port_in1k.pth
# The port differs numerically from the official model: its convs have no
# bias, MindSpore's nn.GELU (tanh approximation) is used everywhere, and the
# stage-4 block LayerNorms use MindSpore's default eps 1e-7. The port ran in
# fp16 (O3); this config runs fp32, so its outputs are the fp32 version of
# the port's (the Newton ridge is exactly 0.01 here, 0.0099945 in fp16).
# Data pipeline, schedule and runtime: the seed recipe.
_base_ = ['./soft-tiny_8xb128_in1k.py']

model = dict(
    backbone=dict(
        conv_bias=False,
        landmark_act_cfg=dict(type='GELU', approximate='tanh'),
        soft_act_cfg=dict(type='GELU', approximate='tanh'),
        cls_act_cfg=dict(type='GELU', approximate='tanh'),
        cls_norm_eps=1e-7,
        drop_path_rate=0.0))

# The converted weights (``soft-mindspore://SOFT_tiny.ckpt`` also works here:
# `import soft_mm` registers the scheme that converts the original .ckpt
# while loading).
load_from = 'checkpoints/soft-tiny_mindspore-port_in1k.pth'
custom_imports = dict(imports=['soft_mm'], allow_failed_imports=False)
