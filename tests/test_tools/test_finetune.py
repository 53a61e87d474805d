# Copyright (c) soft_mm contributors. All rights reserved.
"""The fine-tuning path: digits as PNG class folders, the recipe copied and
edited in its marked lines, loading reported, layer-wise lr decay, and a
checkpoint that does not fit failing the run."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import soft_mm  # noqa: F401
from soft_mm.models import SOFT
from tool_utils import (FINETUNE_RECIPE, ROOT, edit_recipe, load_script,
                        run_main)

FOLDERS = load_script('tools/dataset_converters/digits_to_folders.py')


def copy_recipe(dst, **values):
    """Copy the recipe and set its EDIT lines, as a user would."""
    text = edit_recipe(**values)
    # CPU test settings: no worker processes, one epoch.
    dst.write_text(text + "\ntrain_dataloader['num_workers'] = 0\n"
                   "val_dataloader['num_workers'] = 0\n"
                   "train_cfg['max_epochs'] = 1\n")
    return dst


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp('digits59')
    code = FOLDERS.main([str(root), '--classes', '5', '6', '7',
                         '--train-per-class', '4'])
    assert code == 0
    return root


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """A SOFT-tiny classifier checkpoint with a 1000-class head."""
    path = tmp_path_factory.mktemp('ckpt') / 'soft-tiny.pth'
    cfg = Config.fromfile(FINETUNE_RECIPE)
    cfg.model.backbone.pop('init_cfg')
    cfg.model.head.num_classes = 1000
    from mmpretrain.models import build_classifier
    torch.manual_seed(0)
    model = build_classifier(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def test_digits_as_class_folders(folders):
    for split, per_class in (('train', 4), ('val', None)):
        for digit in '567':
            files = list((folders / split / digit).glob('*.png'))
            assert files and (per_class is None or len(files) == per_class)
    assert not (folders / 'train' / '8').exists()


def test_recipe_loads_reports_and_decays(folders, pretrained, tmp_path):
    cfg = Config.fromfile(str(copy_recipe(
        tmp_path / 'my_ft.py', data_root=str(folders), num_classes=3,
        pretrained=str(pretrained), img_size=64)))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner._init_model_weights()
    model = runner.model
    assert model.head.fc.out_features == 3
    assert model.backbone.pos_shapes[0] == (16, 16)
    source = torch.load(pretrained, weights_only=True)['state_dict']
    assert torch.equal(model.backbone.stages[2][1].attn.v.weight,
                       source['backbone.stages.2.1.attn.v.weight'])
    # Layer-wise lr decay: the head at the base lr, lower blocks less.
    optim = runner.build_optim_wrapper(cfg.optim_wrapper)
    lrs = {g['param_names'][0] if 'param_names' in g else i: g['lr']
           for i, g in enumerate(optim.param_groups)}
    base = cfg.optim_wrapper.optimizer.lr
    assert max(lrs.values()) == pytest.approx(base)
    assert min(lrs.values()) < base * 0.75**8
    assert runner.train_dataloader.dataset.CLASSES == ('5', '6', '7')


def test_a_checkpoint_that_does_not_fit_fails_the_run(folders, tmp_path,
                                                      capsys):
    wrong = tmp_path / 'small.pth'
    model = SOFT(arch='small')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model.state_dict().items()}}, wrong)
    cfg = copy_recipe(tmp_path / 'my_ft.py', data_root=str(folders),
                      num_classes=3, pretrained=str(wrong), img_size=64)
    train = load_script('tools/train.py')
    code, _, err = run_main(train, capsys, cfg, '--work-dir',
                            tmp_path / 'work')
    assert code == 1
    assert f'error: {wrong}: does not fit SOFT' in err
    assert 'unexpected keys' in err
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_one_epoch_end_to_end(folders, pretrained, tmp_path):
    cfg = copy_recipe(tmp_path / 'my_ft.py', data_root=str(folders),
                      num_classes=3, pretrained=str(pretrained), img_size=64)
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'), str(cfg),
         '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'SOFT: loaded all ' in log and 'position tables resized' in log
    assert "not used from the file: 2 tensors outside 'backbone.'" in log
    assert 'accuracy/top1' in log
    assert (tmp_path / 'work' / 'epoch_1.pth').exists()
