# Copyright (c) soft_mm contributors. All rights reserved.
"""soft_mm's models in mmpretrain's model hub: every metafile entry is
listed, points at a config that exists and matches its name, builds
through ``mmpretrain.get_model`` and takes local weights."""
import os.path as osp
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
import yaml
from mmengine.config import Config
from mmpretrain import ImageClassificationInferencer, get_model, list_models

import soft_mm  # noqa: F401  (registers the models)
from soft_mm.apis.model_index import find_model_index, register_model_index

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = 'soft-tiny_1xb64_digits'


def metafile_models() -> dict:
    with open(osp.join(ROOT, 'configs', 'soft', 'metafile.yml')) as f:
        return {m['Name']: m for m in yaml.safe_load(f)['Models']}


def test_index_is_the_checkouts():
    """In a source checkout the root's index is used, not a stale copy in
    soft_mm/.mim."""
    assert find_model_index() == osp.join(ROOT, 'model-index.yml')
    with open(find_model_index()) as f:
        assert yaml.safe_load(f) == {'Import': ['configs/soft/metafile.yml']}


def test_every_metafile_model_is_listed():
    models = metafile_models()
    assert DIGITS in models
    assert 'soft-tiny_3rdparty_mindspore-port_in1k' in models
    assert sorted(list_models('soft*')) == sorted(models)
    # Registered once at import; a second call changes nothing.
    assert register_model_index() == []
    assert sorted(list_models('soft*')) == sorted(models)


@pytest.mark.parametrize('name', sorted(metafile_models()))
def test_entry_config_matches_name(name):
    """The config exists under the name's recipe and builds the arch and
    variant the name says; the parameter count is the model's."""
    entry = metafile_models()[name]
    config = osp.join(ROOT, entry['Config'])
    assert osp.isfile(config), config
    # mmpretrain's naming: a converted model's config drops `3rdparty_`.
    assert osp.basename(config) == name.replace('_3rdparty', '') + '.py'
    backbone = Config.fromfile(config).model.backbone
    arch = name.split('_')[0].replace('soft-norm-', '').replace('soft-', '')
    assert backbone.type == 'SOFT'
    if isinstance(backbone.arch, str):
        assert backbone.arch == arch
    else:  # a zoo arch with other landmark ratios (the digits config)
        zoo = soft_mm.models.backbones.SOFT.arch_zoo[arch]
        for key in ('embed_dims', 'num_heads', 'depths'):
            assert list(backbone.arch[key]) == list(zoo[key]), key
    assert bool(backbone.get('attn_norm', False)) == name.startswith(
        'soft-norm-')
    assert entry['In Collection'] == 'SOFT'
    assert entry['Results'][0]['Metrics']['Top 1 Accuracy'] > 0


@pytest.mark.parametrize(
    'name', [DIGITS, 'soft-norm-tiny_3rdparty_8xb128-official_in1k'])
def test_get_model_builds_counted_params(name):
    model = get_model(name)
    assert isinstance(model.backbone, soft_mm.models.backbones.SOFT)
    params = sum(p.numel() for p in model.parameters())
    assert params == metafile_models()[name]['Metadata']['Parameters']


@pytest.fixture(scope='module')
def digits_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = get_model(DIGITS)
    path = tmp_path_factory.mktemp('hub') / 'digits.pth'
    torch.save({'state_dict': model.state_dict()}, str(path))
    return model.eval(), path


def test_get_model_loads_local_weights(digits_checkpoint):
    trained, path = digits_checkpoint
    torch.manual_seed(1)  # a different random init, overwritten by the file
    model = get_model(DIGITS, pretrained=str(path)).eval()
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'),
                                   trained(x, mode='tensor'))


def test_inferencer_by_name(digits_checkpoint):
    trained, path = digits_checkpoint
    inferencer = ImageClassificationInferencer(DIGITS, pretrained=str(path))
    img = (np.random.default_rng(0).random((24, 20, 3)) * 255).astype(
        np.uint8)
    result = inferencer(img)[0]
    assert 0 <= result['pred_label'] < 10
    assert len(result['pred_scores']) == 10
    assert abs(float(np.sum(result['pred_scores'])) - 1.0) < 1e-5
    assert result['pred_class'] == str(result['pred_label'])


def test_no_published_weights_is_said():
    """soft_mm publishes no weights: ``pretrained=True`` must not pass
    silently (mmpretrain warns and keeps the random init)."""
    with pytest.warns(UserWarning, match='Unable to find pre-defined'):
        get_model(DIGITS, pretrained=True)


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match='Failed to find model'):
        get_model('soft-gigantic_1xb1_in1k')


def test_mim_finds_the_editable_install(tmp_path):
    """``mim search soft_mm`` on the README's install (editable, linked into
    site-packages by tools/setup.sh), from any directory."""
    mim = shutil.which('mim')
    assert mim is not None, 'openmim is installed by tools/setup.sh'
    proc = subprocess.run([mim, 'search', 'soft_mm'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = set(re.findall(r'config id: (\S+)', proc.stdout))
    assert found == set(metafile_models())
