# SOFT-tiny with SOFT-Norm (degree-normalised landmark inverse) classifier:
# soft-tiny.py with the one switch that makes it SOFT-Norm
# (docs/design.md#variants).
_base_ = ['./soft-tiny.py']

model = dict(backbone=dict(attn_norm=True))
