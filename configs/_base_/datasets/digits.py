# scikit-learn's 1 797 handwritten digits (ships with the package, no
# download), upscaled to 32x32; see soft_mm.datasets.Digits.
dataset_type = 'Digits'
data_preprocessor = dict(
    num_classes=10,
    # Digits are grey replicated to RGB; statistics of the training split.
    mean=[78.0, 78.0, 78.0],
    std=[96.0, 96.0, 96.0],
    to_rgb=False,
)

train_pipeline = [
    dict(type='Resize', scale=(32, 32), interpolation='bilinear'),
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=(32, 32), interpolation='bilinear'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
