# Copyright (c) soft_mm contributors. All rights reserved.
"""SOFT as an mmdet backbone: every config of configs/mmdet builds, gives
finite losses and predicts; RetinaNet and Mask R-CNN train, validate (with
CocoMetric) and test through mmdet's Runner from a soft_mm classifier
checkpoint loaded through ``init_cfg``.

Skipped (with the reason) only when mmdet or mmcv's compiled ops are not
installed; ``tools/install_mmcv.sh`` installs them.
"""
import copy
import re

import pytest
import torch

from dense_utils import (DET_CONFIG_DIR, EMBED_DIMS, LogCapture, arch_of,
                         check_backbone_cfg, finite_losses, load_config,
                         make_batch, make_record_hook, require_dense_toolbox,
                         small_resize_pipeline)

require_dense_toolbox('mmdet')

from mmdet.registry import DATASETS, MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from soft_mm.models.backbones import SOFT  # noqa: E402

#: (w, h) the test pipelines resize to (the images' own size).
SCALE = (80, 64)
NUM_TRAIN = 2
#: Detections kept per image in the tests (100 in the configs).
MAX_DETS = 20
ARCHS = ('tiny', 'small', 'medium', 'large')
DET_CONFIGS = [f'retinanet_soft-norm-{a}_fpn_1x_coco.py' for a in ARCHS] + \
    [f'mask-rcnn_soft-norm-{a}_fpn_1x_coco.py' for a in ARCHS]


@pytest.fixture(autouse=True)
def mmdet_scope():
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def load_cfg(name: str) -> Config:
    return load_config(DET_CONFIG_DIR, name)


def point_data_at(cfg: Config, coco_root, num_workers: int = 0) -> Config:
    """Point ``cfg``'s dataloaders and evaluators at the tiny COCO copy
    and shrink the resize steps."""
    for split, ann in (('train', 'train2017'), ('val', 'val2017'),
                       ('test', 'val2017')):
        loader = cfg[f'{split}_dataloader']
        loader.num_workers = num_workers
        loader.persistent_workers = False
        loader.dataset.data_root = str(coco_root)
        loader.dataset.ann_file = f'annotations/instances_{ann}.json'
        loader.dataset.data_prefix = dict(img=f'{ann}/')
        loader.dataset.pipeline = small_resize_pipeline(
            loader.dataset.pipeline, SCALE)
        evaluator = cfg.get(f'{split}_evaluator')
        if evaluator is not None:
            evaluator.ann_file = str(
                coco_root / 'annotations' / f'instances_{ann}.json')
    return cfg


def keep_all_detections(cfg: Config) -> Config:
    """Score threshold 0: a freshly initialised head scores about 0.01
    (focal-loss prior, or 1/81 softmax), below the configs' 0.05, and would
    predict nothing -- the tests check the structure of real predictions.
    Fewer detections and sampled RoIs keep the CPU tests short."""
    test_cfg = cfg.model.test_cfg
    test_cfg = test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg
    test_cfg.score_thr = 0.0
    test_cfg.max_per_img = MAX_DETS
    # Fewer sampled RoIs keep Mask R-CNN's CPU step short.
    if 'rcnn' in cfg.model.train_cfg:
        cfg.model.train_cfg.rcnn.sampler.num = 64
    return cfg


def build_detector(cfg: Config):
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.mark.parametrize('name', DET_CONFIGS)
def test_det_config_builds_and_predicts(name, coco_root):
    """Every config: the settings the README promises, a model that builds
    with the full mmcv, finite losses and well-formed predictions (the
    training step itself runs in the Runner tests below)."""
    cfg = load_cfg(name)
    arch = arch_of(name)
    check_backbone_cfg(cfg.model.backbone, arch)
    assert list(cfg.model.neck.in_channels) == EMBED_DIMS[arch]
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert 'soft_mm' in cfg.custom_imports.imports

    # No pretrained file in the test: random init.
    cfg.model.backbone.init_cfg = None
    keep_all_detections(point_data_at(cfg, coco_root))
    torch.manual_seed(0)
    model = build_detector(cfg)
    assert isinstance(model.backbone, SOFT)
    assert model.backbone.embed_dims == EMBED_DIMS[arch]
    assert model.backbone.norm_eval

    with torch.no_grad():
        model.train()
        data = model.data_preprocessor(
            make_batch(cfg, 'train', DATASETS), True)
        losses = finite_losses(model(**data, mode='loss'))
        assert 'loss_cls' in losses and 'loss_bbox' in losses
        if name.startswith('mask-rcnn'):
            assert {'loss_rpn_cls', 'loss_mask'} <= set(losses)
        model.eval()
        results = model.test_step(make_batch(cfg, 'val', DATASETS))
    check_predictions(results, with_masks=name.startswith('mask-rcnn'))


def check_predictions(results, with_masks: bool):
    assert len(results) == 2
    for sample in results:
        pred = sample.pred_instances
        n = len(pred)
        assert 0 < n <= MAX_DETS
        assert pred.bboxes.shape == (n, 4)
        assert pred.scores.shape == (n, ) and pred.labels.shape == (n, )
        assert torch.isfinite(pred.bboxes).all()
        assert 0 <= int(pred.labels.min()) <= int(pred.labels.max()) < 80
        if with_masks:
            # Masks come back at the original image size.
            assert pred.masks.shape == (n, *sample.ori_shape)


@pytest.mark.parametrize('name, metrics, frozen_stages, with_cp', [
    ('retinanet_soft-norm-tiny_fpn_1x_coco.py', ['bbox'], 1, False),
    ('mask-rcnn_soft-norm-tiny_fpn_1x_coco.py', ['bbox', 'segm'], -1, True),
])
def test_det_runner_train_val_test(name, metrics, frozen_stages, with_cp,
                                   coco_root, tmp_path,
                                   soft_norm_tiny_classifier):
    """What mmdet's tools/train.py and tools/test.py do, on the tiny set,
    with the backbone initialised from a soft_mm classifier checkpoint."""
    classifier, ckpt = soft_norm_tiny_classifier
    cfg = keep_all_detections(point_data_at(load_cfg(name), coco_root))
    cfg.model.backbone.update(
        frozen_stages=frozen_stages, with_cp=with_cp,
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                      prefix='backbone.'))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1,
                         val_interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = None  # a 100+ MB file per test otherwise
    runner = Runner.from_cfg(cfg)
    record = make_record_hook()
    runner.register_hook(record)
    with LogCapture() as log:
        runner.train()
    # soft_mm's strict Pretrained loader: every backbone tensor from the
    # file, the classifier head named as not used.
    loaded = (r'SOFT: loaded all \d+ tensors of the backbone from ' +
              re.escape(str(ckpt)) + r" \(names 'backbone\.\*'\)")
    assert re.search(loaded, log.text), log.text
    assert re.search(r'not used from the file: 2 tensors .*head\.fc', log.text)
    assert 'do not match' not in log.text

    # NUM_TRAIN images in batches of 2.
    assert len(record.train_losses) == NUM_TRAIN // 2
    for step in record.train_losses:
        finite_losses({k: torch.tensor(v) for k, v in step.items()})
    assert len(record.val_metrics) == 1
    for metric in metrics:
        value = record.val_metrics[0][f'coco/{metric}_mAP']
        assert 0.0 <= value <= 1.0, (metric, value)

    # Loaded, then trained -- except what frozen_stages / norm_eval keep.
    trained = runner.model.backbone.state_dict()
    pretrained = classifier.backbone.state_dict()
    frozen = tuple(f'{part}.{i}' for part in ('stages', 'patch_embeds',
                                              'pos_embeds')
                   for i in range(frozen_stages + 1))
    for key, value in pretrained.items():
        if key.startswith(frozen) or 'running_' in key:
            assert torch.equal(trained[key], value), f'{key} changed'
    assert not torch.equal(trained['stages.2.0.attn.q.weight'],
                           pretrained['stages.2.0.attn.q.weight'])

    test_metrics = runner.test()
    for metric in metrics:
        assert 0.0 <= test_metrics[f'coco/{metric}_mAP'] <= 1.0


def test_backbone_loads_classifier_checkpoint(soft_norm_tiny_classifier):
    """``init_cfg=dict(type='Pretrained', prefix='backbone.')`` takes the
    backbone out of a soft_mm classifier checkpoint."""
    classifier, ckpt = soft_norm_tiny_classifier
    cfg = load_cfg('retinanet_soft-norm-tiny_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)

    torch.manual_seed(0)
    random_init = copy.deepcopy(cfg.model)
    random_init.backbone.init_cfg = None
    random_model = build_detector(Config(dict(model=random_init)))
    with LogCapture() as log:
        model = build_detector(cfg)
    assert 'do not match' not in log.text, log.text

    expected = classifier.backbone.state_dict()
    loaded = model.backbone.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key

    # At 224 the bounded landmarks (grid 7) equal the official ones, so the
    # detector's feature maps are those of the classifier's backbone.
    reference = SOFT(arch='tiny', attn_norm=True, out_indices=(0, 1, 2, 3),
                     out_type='featmap')
    reference.load_state_dict(expected)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = model.backbone.eval()(x)
        ref_feats = reference.eval()(x)
        random_feats = random_model.backbone.eval()(x)
    strides = (4, 8, 16, 32)
    for feat, ref, rand, dims, s in zip(feats, ref_feats, random_feats,
                                        EMBED_DIMS['tiny'], strides):
        assert feat.shape == (1, dims, 224 // s, 224 // s)
        torch.testing.assert_close(feat, ref, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(feat, rand, atol=1e-3)
    # The last map is the normed stage-4 output without the cls token.
    with torch.no_grad():
        cls_token = classifier.backbone(x)[-1]
    assert cls_token.shape == (1, 512)
