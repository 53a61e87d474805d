# SOFT-Norm medium (degree-normalised landmark inverse, paper++) on
# ImageNet-1k: the official recipe of soft-medium_16xb64-official_in1k, same
# schedule and batch layout, with the normalised inverse.
_base_ = './soft-medium_16xb64-official_in1k.py'

model = dict(backbone=dict(attn_norm=True))
