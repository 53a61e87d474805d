# SOFT-small with SOFT-Norm (degree-normalised landmark inverse) classifier:
# soft-small.py with the one switch that makes it SOFT-Norm
# (docs/design.md#variants).
_base_ = ['./soft-small.py']

model = dict(backbone=dict(attn_norm=True))
