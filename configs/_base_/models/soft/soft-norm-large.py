# SOFT-large with SOFT-Norm (degree-normalised landmark inverse) classifier:
# soft-large.py with the one switch that makes it SOFT-Norm
# (docs/design.md#variants).
_base_ = ['./soft-large.py']

model = dict(backbone=dict(attn_norm=True))
