# Copyright (c) soft_mm contributors. All rights reserved.
"""The official (timm-based) checkpoint format: key mapping, arch inference
and the refusals, on fake checkpoints from ``soft_fixtures`` (random values
under the official names and shapes)."""
import pytest
import torch

from soft_mm.checkpoint import (CheckpointError, convert_official_state_dict,
                                load_official_checkpoint)
from soft_fixtures import SMALL, TINY, official_state


def test_official_tiny_and_code_small_arch():
    state, meta = convert_official_state_dict(
        official_state(TINY, num_classes=1000, empty=True))
    assert meta['arch_name'] == 'tiny'
    n_params = sum(v.numel() for k, v in state.items()
                   if 'running' not in k and 'num_batches' not in k)
    assert round(n_params / 1e6, 2) == 13.07  # the paper's 13.1 M
    # The official code's `small` has 20 blocks in stage 3: a custom arch.
    code_small = dict(TINY, depths=[1, 3, 20, 4])
    _, meta = convert_official_state_dict(
        official_state(code_small, num_classes=1000, empty=True))
    assert meta['arch_name'] is None
    assert meta['arch']['depths'] == [1, 3, 20, 4]


@pytest.mark.parametrize('case', ['unknown', 'missing', 'shape', 'resnet'])
def test_official_refuses_bad_keys(case):
    sd = official_state(SMALL, empty=True)
    if case == 'unknown':
        sd['block1.0.att.extra.weight'] = torch.empty(3)
        sd['dist_token'] = torch.empty(1, 1, 64)
        match = r'2 keys are not part of.*dist_token'
    elif case == 'missing':
        del sd['block2.1.att.mha.W_v.bias']
        match = r'1 missing keys: backbone.stages.1.1.attn.v.bias'
    elif case == 'shape':
        sd['block3.1.att.ff1.weight'] = torch.empty(64, 64)
        match = r'shape mismatches.*stages.2.1.ffn.fc1.weight \(64, 64\)'
    else:
        sd = {'conv1.weight': torch.empty(64, 3, 7, 7),
              'fc.weight': torch.empty(1000, 2048)}
        match = 'not part of an official SOFT model: conv1.weight'
    with pytest.raises(CheckpointError, match=match):
        convert_official_state_dict(sd, path='x.pth')


def test_official_refuses_integer_tensors(tmp_path):
    sd = official_state(SMALL)
    sd['pos_embed1'] = sd['pos_embed1'].round().long()
    with pytest.raises(CheckpointError,
                       match=r'dtype mismatches.*pos_embeds\.0 torch\.int64'):
        convert_official_state_dict(sd)


def test_official_refuses_pickled_code(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'hook': print}, path)
    with pytest.raises(CheckpointError, match='refused to unpickle'):
        load_official_checkpoint(str(path))
