# SOFT small on ImageNet-1k with the official recipe (the authors' timm/DeiT-
# based code; docs/design.md#training-recipes): global batch 1024 (8 devices x
# 128), AdamW lr 0.001, 300 epochs, RandAugment + random erasing +
# Mixup/CutMix, label smoothing 0.1, drop path 0.1, grad clip 1.0, EMA 0.99996.
# Everything but the arch as in the tiny config.
_base_ = './soft-tiny_8xb128-official_in1k.py'

model = dict(backbone=dict(arch='small'))
