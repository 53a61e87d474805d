# SOFT-medium classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SOFT',
        arch='medium',
        attn_norm=False,
        drop_path_rate=0.1,
        out_type='cls_token'),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        topk=(1, 5)))
