# Copyright (c) soft_mm contributors. All rights reserved.
"""SOFT as an mmseg backbone: every config of configs/mmseg builds, gives
finite losses and predicts; UPerNet trains, validates (with IoUMetric) and
tests through mmseg's Runner; a checkpoint of another arch is loaded with a
report of what did not match.

Skipped (with the reason) only when mmseg or mmcv's compiled ops are not
installed; ``tools/install_mmcv.sh`` installs them.
"""
import pytest
import torch

from dense_utils import (EMBED_DIMS, SEG_CONFIG_DIR, arch_of,
                         check_backbone_cfg, finite_losses, load_config,
                         make_batch, make_record_hook, require_dense_toolbox,
                         small_resize_pipeline)

require_dense_toolbox('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmseg.registry import DATASETS, MODELS  # noqa: E402

from soft_mm.checkpoint import CheckpointError  # noqa: E402
from soft_mm.models.backbones import SOFT  # noqa: E402

#: (w, h) the test pipelines resize to and the training crop (h, w); the
#: images are 80 x 64.
SCALE = (80, 64)
CROP = (64, 64)
NUM_CLASSES = 150
SEG_CONFIGS = [
    'upernet_soft-norm-small_4xb4-160k_ade20k-512x512.py',
    'upernet_soft-norm-medium_4xb4-160k_ade20k-512x512.py',
    'fpn_soft-norm-small_4xb4-40k_ade20k-512x512.py',
]


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def load_cfg(name: str) -> Config:
    return load_config(SEG_CONFIG_DIR, name)


def point_data_at(cfg: Config, ade_root, num_workers: int = 0) -> Config:
    """Point ``cfg``'s dataloaders at the tiny ADE20K copy and shrink the
    resize / crop steps and the padded training size."""
    for split, folder in (('train', 'training'), ('val', 'validation'),
                          ('test', 'validation')):
        loader = cfg[f'{split}_dataloader']
        loader.num_workers = num_workers
        loader.persistent_workers = False
        loader.dataset.data_root = str(ade_root)
        loader.dataset.data_prefix = dict(
            img_path=f'images/{folder}', seg_map_path=f'annotations/{folder}')
        loader.dataset.pipeline = small_resize_pipeline(
            loader.dataset.pipeline, SCALE, CROP)
    # Training batches are padded to this size: crops must not exceed it.
    cfg.model.data_preprocessor.size = CROP
    return cfg


def build_segmentor(cfg: Config):
    # SyncBN of the heads needs a process group; the Runner reverts it
    # the same way when not distributed.
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return model


@pytest.mark.parametrize('name', SEG_CONFIGS)
def test_seg_config_trains_and_predicts(name, ade_root):
    cfg = load_cfg(name)
    arch = arch_of(name)
    check_backbone_cfg(cfg.model.backbone, arch)
    if name.startswith('upernet'):
        assert list(cfg.model.decode_head.in_channels) == EMBED_DIMS[arch]
        assert cfg.model.auxiliary_head.in_channels == EMBED_DIMS[arch][2]
    else:
        assert list(cfg.model.neck.in_channels) == EMBED_DIMS[arch]
    assert cfg.model.decode_head.num_classes == NUM_CLASSES
    assert cfg.model.pretrained is None
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'

    cfg.model.backbone.init_cfg = None
    point_data_at(cfg, ade_root)
    torch.manual_seed(0)
    model = build_segmentor(cfg)
    assert isinstance(model.backbone, SOFT)
    assert model.backbone.embed_dims == EMBED_DIMS[arch]

    with torch.no_grad():
        model.train()
        data = model.data_preprocessor(
            make_batch(cfg, 'train', DATASETS), True)
        losses = finite_losses(model(**data, mode='loss'))
        assert 'decode.loss_ce' in losses
        if name.startswith('upernet'):
            assert 'aux.loss_ce' in losses
        model.eval()
        results = model.test_step(make_batch(cfg, 'val', DATASETS))
    check_predictions(results)


def check_predictions(results):
    assert len(results) == 2
    for sample in results:
        h, w = sample.ori_shape
        assert sample.seg_logits.data.shape == (NUM_CLASSES, h, w)
        pred = sample.pred_sem_seg.data
        assert pred.shape == (1, h, w)
        assert 0 <= int(pred.min()) <= int(pred.max()) < NUM_CLASSES


def test_upernet_runner_train_val_test(ade_root, tmp_path):
    """What mmseg's tools/train.py and tools/test.py do, on the tiny set."""
    cfg = point_data_at(
        load_cfg('upernet_soft-norm-small_4xb4-160k_ade20k-512x512.py'),
        ade_root)
    cfg.model.backbone.init_cfg = None
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1,
                         val_interval=1)
    cfg.train_dataloader.batch_size = 2
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = None  # a 200+ MB file otherwise
    runner = Runner.from_cfg(cfg)
    record = make_record_hook()
    runner.register_hook(record)
    runner.train()

    assert len(record.train_losses) == 1
    for step in record.train_losses:
        finite_losses({k: torch.tensor(v) for k, v in step.items()})
    assert len(record.val_metrics) == 1
    assert 0.0 <= record.val_metrics[0]['mIoU'] <= 100.0

    test_metrics = runner.test()
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(test_metrics)
    assert 0.0 <= test_metrics['aAcc'] <= 100.0


def test_wrong_arch_checkpoint_fails(soft_norm_tiny_classifier):
    """Loading a tiny classifier into the small backbone (same widths,
    fewer blocks) is an error naming the missing blocks: the segmentor is
    never built half-random."""
    _, ckpt = soft_norm_tiny_classifier
    cfg = load_cfg('upernet_soft-norm-small_4xb4-160k_ade20k-512x512.py')
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    with pytest.raises(CheckpointError) as info:
        build_segmentor(cfg)
    message = str(info.value)
    assert str(ckpt) in message and 'does not fit SOFT' in message
    # tiny has depths (1, 2, 3, 2), small (1, 3, 7, 4): the first missing
    # block is stage 2's third.
    assert 'missing keys: stages.1.2.attn.q.weight' in message
    # The classifier head is outside the prefix: not an error.
    assert 'head.fc' not in message and 'unexpected' not in message
