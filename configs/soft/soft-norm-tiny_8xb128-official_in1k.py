# SOFT-Norm tiny (degree-normalised landmark inverse, paper++) on
# ImageNet-1k: the official recipe of soft-tiny_8xb128-official_in1k, same
# schedule and batch layout, with the normalised inverse.
_base_ = './soft-tiny_8xb128-official_in1k.py'

model = dict(backbone=dict(attn_norm=True))
