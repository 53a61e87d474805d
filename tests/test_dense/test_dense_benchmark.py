# Copyright (c) soft_mm contributors. All rights reserved.
"""``benchmark.py --mode dense``: RetinaNet / Mask R-CNN / UPerNet with the
backbone swapped (SOFT-Norm-tiny, PVTv2-b1, Swin-T, ResNet-50) build with
matching channels and run a training step and an inference in the
benchmark's fresh processes (no timing asserted)."""
import csv

import pytest
import torch

from soft_mm.benchmark.measure import build_dense, dense_batch
from soft_mm.benchmark.subjects import DENSE_MODELS, DENSE_TASKS, dense_subject
from dense_utils import require_dense_toolbox
from tool_utils import load_script

require_dense_toolbox('mmdet')
require_dense_toolbox('mmseg')


@pytest.mark.parametrize('task', list(DENSE_TASKS))
@pytest.mark.parametrize('name', DENSE_MODELS)
def test_swapped_backbone_builds_and_runs(task, name):
    subject = dense_subject(name, task)
    model = build_dense(subject, (64, 96)).eval()
    backbone = type(model.backbone).__name__
    assert backbone == {'soft-norm-tiny': 'SOFT',
                        'pvtv2-b1': 'PyramidVisionTransformerV2',
                        'swin-t': 'SwinTransformer',
                        'resnet-50': ('ResNet' if subject['task'] == 'det'
                                      else 'ResNetV1c')}[name]
    if name == 'soft-norm-tiny':  # the config's own, tiny, no weights file
        attn = model.backbone.stages[0][0].attn
        assert attn.attn_norm and attn.landmark_grid == (7, 7)
        assert 'Pretrained' not in str(model.backbone.init_cfg)
        assert len(model.backbone.stages[2]) == 3  # tiny's depth
    data = model.data_preprocessor(
        dense_batch(subject['task'], 64, 96, subject['masks']), False)
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
    assert all(torch.isfinite(f).all() for f in feats)


def test_dense_batch_has_ground_truth():
    det = dense_batch('det', 64, 96, masks=True, batch=2)
    assert len(det['inputs']) == 2 and det['inputs'][0].dtype == torch.uint8
    gt = det['data_samples'][0].gt_instances
    boxes = gt.bboxes
    assert len(boxes) == 8 and (boxes[:, 2:] > boxes[:, :2]).all()
    assert (boxes[:, 2] < 96).all() and (boxes[:, 3] < 64).all()
    assert gt.masks.masks.shape == (8, 64, 96) and gt.masks.masks.any()
    seg = dense_batch('seg', 64, 96, masks=False)
    assert seg['data_samples'][0].gt_sem_seg.data.shape == (1, 64, 96)


def test_tool_dense_mode_end_to_end(tmp_path, capsys):
    tool = load_script('tools/analysis_tools/benchmark.py', register=True)
    code = tool.main([
        '--mode', 'dense', '--tasks', 'retinanet', 'upernet', '--models',
        'soft-norm-tiny', 'resnet-50', '--sizes', '64x96', '--rounds', '1',
        '--iters', '1', '--warmup', '0', '--out-dir', str(tmp_path)
    ], loadavg=lambda: (0.0, 0.0, 0.0), cpu_seconds=lambda: 0.0)
    out = capsys.readouterr().out
    assert code == 0, out
    with open(tmp_path / 'benchmark_dense.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['task'], r['pass'], r['model'], r['batch'])
            for r in rows] == [
        (t, p, m, b) for t, b in (('retinanet', '1'), ('upernet', '2'))
        for p in ('train', 'infer') for m in ('soft-norm-tiny', 'resnet-50')]
    assert all(r['status'] == 'ok' for r in rows), rows
    report = (tmp_path / 'benchmark_dense.md').read_text()
    assert '## retinanet train 64x96, batch 1' in report
    assert '## upernet infer 64x96, batch 2' in report
    assert 'time vs soft-norm-tiny' in report


def test_tool_dense_mode_skips_a_size_predicted_over_budget(
        tmp_path, capsys):
    """A task's sizes run small to large; the third is predicted from the
    two below and, over the (tiny) time budget, skipped with the figure."""
    tool = load_script('tools/analysis_tools/benchmark.py', register=True)
    code = tool.main([
        '--mode', 'dense', '--tasks', 'upernet', '--models',
        'soft-norm-tiny', '--sizes', '64x96', '32x32', '48x48', '--passes',
        'infer', '--rounds', '1', '--iters', '1', '--warmup', '0',
        '--max-step-s', '1e-9', '--out-dir', str(tmp_path)
    ], loadavg=lambda: (0.0, 0.0, 0.0), cpu_seconds=lambda: 0.0)
    out = capsys.readouterr().out
    assert code == 0, out
    with open(tmp_path / 'benchmark_dense.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['height'], r['width'], r['status']) for r in rows] == [
        ('32', '32', 'ok'), ('48', '48', 'ok'), ('64', '96', 'skipped')]
    assert float(rows[2]['pred_ms']) > 0 and float(rows[2]['pred_MiB']) > 0
    assert 'predicted' in rows[2]['note']
    report = (tmp_path / 'benchmark_dense.md').read_text()
    assert '1e-09 s/step budget; not run' in report


def test_tool_dense_mode_refuses_classifier_names(capsys):
    tool = load_script('tools/analysis_tools/benchmark.py', register=True)
    with pytest.raises(SystemExit):
        tool.main(['--mode', 'dense', '--models', 'deit-tiny'])
    assert 'not deit-tiny' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(['--models', 'resnet-50', '--sizes', '64'])
    assert 'resnet-50: dense backbones' in capsys.readouterr().err
