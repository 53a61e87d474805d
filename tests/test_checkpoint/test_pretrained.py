# Copyright (c) soft_mm contributors. All rights reserved.
"""``init_cfg=dict(type='Pretrained', ...)`` of the SOFT backbone: strict,
reported, position tables resized to the backbone's ``img_size``."""
import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.models import build_classifier

import soft_mm  # noqa: F401  (registers the loader)
from soft_mm.checkpoint import CheckpointError
from soft_mm.models import SOFT

ARCH = dict(embed_dims=[16, 32, 64, 64], num_heads=[1, 2, 2, 2],
            depths=[1, 1, 1, 1], stem_channels=8)


def classifier(num_classes=10, **backbone):
    return build_classifier(dict(
        type='ImageClassifier',
        backbone=dict(type='SOFT', arch=ARCH, drop_path_rate=0.,
                      **backbone),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=64)))


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    source = classifier(num_classes=1000)
    source.init_weights()
    path = tmp_path / 'imagenet.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    return source, path


class Messages:

    def __enter__(self):
        self.logger = MMLogger.get_current_instance()
        self.lines = []
        self.handler = type('H', (__import__('logging').Handler, ), {
            'emit': lambda h, r: self.lines.append(r.getMessage())})()
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)

    @property
    def text(self):
        return '\n'.join(self.lines)


def test_backbone_of_a_classifier_for_new_classes(ckpt):
    source, path = ckpt
    model = classifier(num_classes=7, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    with Messages() as log:
        model.init_weights()
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert model.head.fc.weight.shape == (7, 64)
    n = len(source.backbone.state_dict())
    assert (f'SOFT: loaded all {n} tensors of the backbone from {path} '
            "(names 'backbone.*')") in log.text
    assert ("not used from the file: 2 tensors outside 'backbone.': "
            'head.fc.weight (1000, 64), head.fc.bias (1000,)') in log.text


def test_position_tables_are_resized_once(ckpt):
    source, path = ckpt
    model = classifier(img_size=96, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    assert model.backbone.pos_shapes == [(24, 24), (12, 12), (6, 6), (3, 3)]
    with Messages() as log:
        model.init_weights()
    assert 'pos_embeds.0 56x56 -> 24x24' in log.text
    assert 'pos_embeds.3 7x7 -> 3x3' in log.text
    # The table is what the 224 model would use at 96x96.
    from mmpretrain.models.utils import resize_pos_embed
    want = resize_pos_embed(source.backbone.pos_embeds[3], (7, 7), (3, 3),
                            mode='bilinear', num_extra_tokens=1)
    torch.testing.assert_close(model.backbone.pos_embeds[3].data, want)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.eval().backbone(x)[0],
                                   source.eval().backbone(x)[0])


@pytest.mark.parametrize('arch,prefix,match', [
    (dict(ARCH, depths=[1, 1, 2, 1]), 'backbone.', 'missing keys'),
    (ARCH, 'head.', "does not fit SOFT"),
    (ARCH, 'encoder.', "no tensor name starts with 'encoder.'"),
])
def test_a_checkpoint_that_does_not_fit_fails(ckpt, arch, prefix, match):
    _, path = ckpt
    model = SOFT(arch=arch, init_cfg=dict(type='Pretrained',
                                          checkpoint=str(path),
                                          prefix=prefix))
    with pytest.raises(CheckpointError, match=match):
        model.init_weights()


def test_a_missing_file_fails(tmp_path):
    model = SOFT(arch=ARCH, init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'nope.pth')))
    with pytest.raises(CheckpointError, match='no such file'):
        model.init_weights()
