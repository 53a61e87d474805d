# SOFT-medium with SOFT-Norm (degree-normalised landmark inverse) classifier:
# soft-medium.py with the one switch that makes it SOFT-Norm
# (docs/design.md#variants).
_base_ = ['./soft-medium.py']

model = dict(backbone=dict(attn_norm=True))
