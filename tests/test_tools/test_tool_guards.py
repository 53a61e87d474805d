# Copyright (c) soft_mm contributors. All rights reserved.
"""What the train and test tools refuse before mmengine would go on with a
warning: weights that do not fit, a resume from weights only, a busy work
dir, unreadable configs and checkpoints."""
import os
import os.path as osp
import pickle
import re

import pytest
import torch

from soft_mm.apis.inference import build_classifier
from soft_mm.runner import WorkDirLock, load_config
from soft_fixtures import SMALL, write_timm_checkpoint
from tool_utils import DIGITS_CFG, ROOT, TINY_CFG, load_script, run_main

TRAIN = load_script('tools/train.py')
TEST = load_script('tools/test.py')
IMAGENET_CFG = osp.join(ROOT, 'configs', 'soft', 'soft-tiny_8xb128_in1k.py')


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """The digits classifier's weights, and files that do not fit it."""
    tmp = tmp_path_factory.mktemp('guards')
    torch.manual_seed(0)
    state = build_classifier(load_config(DIGITS_CFG)).state_dict()
    files = dict(good=tmp / 'good.pth')
    torch.save({'state_dict': state}, files['good'])
    variants = {
        'missing': {k: v for k, v in state.items() if k != 'head.fc.bias'},
        'extra': dict(state, **{'head.extra': torch.zeros(1)}),
        'shape': dict(state, **{'head.fc.weight': torch.zeros(7, 512)}),
        'backbone_only': {k[len('backbone.'):]: v for k, v in state.items()
                          if k.startswith('backbone.')},
        'other_arch': build_classifier(load_config(TINY_CFG)).state_dict(),
        'int_dtype': dict(state, **{
            'backbone.cls_token':
            state['backbone.cls_token'].round().long()}),
    }
    for name, sd in variants.items():
        files[name] = tmp / f'{name}.pth'
        torch.save({'state_dict': sd}, files[name])
    files['random'] = tmp / 'random.pth'
    files['random'].write_bytes(os.urandom(512))
    files['text'] = tmp / 'notes.pth'
    files['text'].write_text('not a checkpoint\n' * 20)
    files['official'] = tmp / 'official.pth.tar'
    write_timm_checkpoint(files['official'], SMALL)
    return files


@pytest.mark.parametrize('case, match', [
    ('missing', r'1 missing keys: head\.fc\.bias'),
    ('extra', r'1 unexpected keys: head\.extra'),
    ('shape', r'head\.fc\.weight \(7, 512\) vs \(10, 512\)'),
    ('backbone_only', r'missing keys: backbone\.'),
    ('other_arch', r'does not fit'),
    ('int_dtype', r'dtype mismatches.*backbone\.cls_token torch\.int64'),
])
def test_test_tool_loads_strictly(weights, capsys, tmp_path, case, match):
    code, out, err = run_main(TEST, capsys, DIGITS_CFG, weights[case],
                              '--work-dir', tmp_path)
    assert code == 1
    assert str(weights[case]) in err
    assert re.search(match, err), err


def test_test_tool_non_strict_runs(weights, capsys, tmp_path):
    out = tmp_path / 'metrics.pkl'
    code, _, err = run_main(
        TEST, capsys, DIGITS_CFG, weights['missing'], '--non-strict',
        '--work-dir', tmp_path, '--out', out, '--out-item', 'metrics',
        '--cfg-options', 'test_dataloader.dataset.indices=16')
    assert code == 0, err
    with open(out, 'rb') as f:
        assert 'accuracy/top1' in pickle.load(f)


@pytest.mark.parametrize('case', ['random', 'text'])
def test_test_tool_names_non_checkpoints(weights, capsys, tmp_path, case):
    code, _, err = run_main(TEST, capsys, DIGITS_CFG, weights[case],
                            '--work-dir', tmp_path)
    assert code == 1
    assert f'not a PyTorch checkpoint: {weights[case]}' in err
    assert 'weights_only=False' not in err and 'Traceback' not in err


def test_test_tool_understands_schemes(weights, capsys, tmp_path):
    # The file exists: the error is the arch, not "not found".
    code, _, err = run_main(TEST, capsys, DIGITS_CFG,
                            f'soft-official://{weights["official"]}',
                            '--work-dir', tmp_path)
    assert code == 1
    assert 'does not fit' in err and 'not found' not in err


def test_config_syntax_error_names_the_file(tmp_path, capsys):
    base = tmp_path / 'base.py'
    base.write_text('model = dict(\ntype = 1\n')
    top = tmp_path / 'top.py'
    top.write_text("_base_ = ['./base.py']\nx = 1\n")
    for tool, args in ((TEST, (top, tmp_path / 'x.pth')), (TRAIN, (top, ))):
        code, _, err = run_main(tool, capsys, *args, '--work-dir', tmp_path)
        assert code == 1
        assert f'{base}, line' in err, err


def test_resume_refuses_weights_only(weights, capsys, tmp_path):
    code, _, err = run_main(TRAIN, capsys, DIGITS_CFG, '--work-dir',
                            tmp_path, '--resume', weights['good'])
    assert code == 1
    assert 'not a training checkpoint' in err and str(weights['good']) in err


def test_resume_refuses_weights_that_do_not_fit(weights, capsys, tmp_path):
    sd = torch.load(weights['shape'], weights_only=True)['state_dict']
    bad = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': sd, 'optimizer': {}, 'meta': {'epoch': 1}},
               bad)
    # An explicit path, and `--resume` alone finding it in the work dir.
    (tmp_path / 'last_checkpoint').write_text(str(bad))
    for resume in (str(bad), None):
        args = ['--resume'] + ([resume] if resume else [])
        code, _, err = run_main(TRAIN, capsys, DIGITS_CFG, '--work-dir',
                                tmp_path, *args)
        assert code == 1
        assert 'does not fit' in err and 'head.fc.weight' in err


def test_second_training_in_a_work_dir_is_refused(tmp_path, capsys):
    with WorkDirLock(str(tmp_path)):
        code, _, err = run_main(TRAIN, capsys, DIGITS_CFG, '--work-dir',
                                tmp_path)
        assert code == 1
        assert f'(pid {os.getpid()})' in err and str(tmp_path) in err
    # Released: the next run may take it.
    WorkDirLock(str(tmp_path)).acquire().release()


@pytest.mark.parametrize('tool', [TRAIN, TEST])
def test_cfg_options_merge_before_dataloader_defaults(tool, tmp_path):
    """``num_workers=0`` on an ImageNet config must turn
    ``persistent_workers`` off, not fail in the DataLoader."""
    argv = [IMAGENET_CFG] + (['x.pth'] if tool is TEST else []) + [
        '--cfg-options', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0'
    ]
    cfg = tool.merge_args(load_config(IMAGENET_CFG), tool.parse_args(argv))
    fields = (['train_dataloader', 'val_dataloader', 'test_dataloader']
              if tool is TRAIN else ['test_dataloader'])
    for field in fields:
        assert cfg[field].num_workers == 0
        assert cfg[field].persistent_workers is False
