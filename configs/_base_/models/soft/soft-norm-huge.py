# SOFT-huge with SOFT-Norm (degree-normalised landmark inverse) classifier:
# soft-huge.py with the one switch that makes it SOFT-Norm
# (docs/design.md#variants).
_base_ = ['./soft-huge.py']

model = dict(backbone=dict(attn_norm=True))
