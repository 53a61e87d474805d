# Copyright (c) soft_mm contributors. All rights reserved.
"""Reading checkpoints: one reader (mmengine's ``CheckpointLoader`` with
soft_mm's schemes and safe local loader registered), strict loading, and
the allowlist of safe loading."""
import pytest
import torch
from mmpretrain.models import build_classifier

import soft_mm  # noqa: F401  (registers the schemes)
from soft_mm.checkpoint import (CheckpointError, CheckpointNotFoundError,
                                load_model_weights, read_checkpoint)
from soft_fixtures import SMALL, write_timm_checkpoint


def test_scheme_loads_official_file_in_init_cfg(tmp_path):
    src = tmp_path / 'official.pth.tar'
    _, ema = write_timm_checkpoint(src, SMALL)
    model = build_classifier(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='SOFT',
                arch=SMALL,
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=f'soft-official://{src}',
                    prefix='backbone.')),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    model.init_weights()
    assert torch.equal(model.backbone.stages[2][1].attn.v.weight,
                       ema['block3.1.att.mha.W_v.weight'])
    assert torch.equal(model.backbone.cls_token, ema['cls_token'])


def small_classifier():
    return build_classifier(dict(
        type='ImageClassifier',
        backbone=dict(type='SOFT', arch=SMALL, init_cfg=None),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))


def test_read_checkpoint_is_the_one_reader(tmp_path):
    """Local files, schemes and a missing file through one function, with
    one exception type from the bottom up."""
    src = tmp_path / 'official.pth.tar'
    _, ema = write_timm_checkpoint(src, SMALL)
    converted = read_checkpoint(f'soft-official://{src}')
    assert torch.equal(converted['state_dict']['backbone.cls_token'],
                       ema['cls_token'])
    assert set(read_checkpoint(str(src))) >= {'state_dict'}
    with pytest.raises(CheckpointNotFoundError, match='no such file') as e:
        read_checkpoint(str(tmp_path / 'missing.pth'))
    # mmengine's callers catch FileNotFoundError, soft_mm's CheckpointError.
    assert isinstance(e.value, FileNotFoundError)
    assert isinstance(e.value, CheckpointError)


def test_load_model_weights_is_strict(tmp_path):
    torch.manual_seed(0)
    model = small_classifier()
    state = model.state_dict()
    good, bad = tmp_path / 'good.pth', tmp_path / 'bad.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 3}}, good)
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if k != 'head.fc.bias'}}, bad)
    fresh = small_classifier()
    assert load_model_weights(fresh, str(good)) == {'epoch': 3}
    assert all(torch.equal(v, state[k])
               for k, v in fresh.state_dict().items())
    with pytest.raises(CheckpointError,
                       match=r'1 missing keys: head\.fc\.bias'):
        load_model_weights(small_classifier(), str(bad))


def test_safe_loading_keeps_the_process_allowlist(tmp_path):
    """Reading a file must not take soft_mm's allowlist away from the rest
    of the process (mmengine's resume unpickles HistoryBuffer later)."""
    from mmengine.logging import HistoryBuffer

    from soft_mm.checkpoint import safe_torch_load
    path = tmp_path / 'hub.pth'
    buffer = HistoryBuffer()
    buffer.update(1.0)
    buffer.update(2.0)
    torch.save({'buffer': buffer}, path)
    write_timm_checkpoint(tmp_path / 'other.pth', SMALL)
    for _ in range(2):
        safe_torch_load(str(tmp_path / 'other.pth'))
        loaded = torch.load(path, weights_only=True)['buffer']
        assert list(loaded.data[0]) == [1.0, 2.0]
