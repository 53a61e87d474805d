# Copyright (c) soft_mm contributors. All rights reserved.
"""Pre-trained weights on real images (digits as PNG class folders), through
the fine-tuning recipe ``configs/soft/soft-tiny_ft-1xb32_custom.py``.

Pre-training and fine-tuning are copies of the recipe with the same
pipeline, arch and ``img_size``; the compared fine-tunes differ only in their
start (the file, or the backbone's random initialisation).

- In CI: SOFT-tiny pre-trained on digits 0-4, then fine-tuned with a *new
  head* on 10 images per digit, beats random initialisation on the held-out
  0-4 images by a wide margin, and starts from every tensor of the file.
- In CI: the layouts ``digits_to_folders.py`` writes for richer
  pre-training tasks (``--rotations``, ``--flips``).
- Opt-in (``SOFT_MM_TRANSFER=0,1,2,3,4,5``, the seeds), a measurement, not
  a CI claim: new digits 5-9 after pre-training on 0-4 in the eight
  symmetries of the square (40 classes), at two fine-tuning budgets. The
  gain there is not robust: with this pre-training it wins on every seed
  at 5 images per digit, but pre-trainings that differ only in their seed
  lose on some seeds, or on average; numbers in docs/finetune.md
  ("Measured: pre-trained vs random").
"""
import os
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import soft_mm  # noqa: F401
from tool_utils import edit_recipe, load_script

FOLDERS = load_script('tools/dataset_converters/digits_to_folders.py')

IMG_SIZE = 32
SEEDS = (0, 1, 2)
# Top-1 (%) on the 180 held-out 0-4 images: pre-trained must beat random
# initialisation by this much for every seed. Measured gaps: +23.3, +21.7,
# +42.2 points (seeds 0, 1, 2; docs/finetune.md).
MARGIN = 15.0
# The pipeline of both runs: no horizontal flip (a flipped digit is another
# shape) and crops of at least half the image (the recipe's 8 % crops cut
# most of a 32x32 digit away).
DIGITS_PIPELINE = """
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size,
         crop_ratio_range=(0.5, 1.0)),
    dict(type='PackInputs'),
]
train_dataloader['dataset']['pipeline'] = train_pipeline
"""


def copy_recipe(dst, epochs, seed, save, **values):
    """The recipe with its EDIT lines set, the digits pipeline, ``epochs``
    epochs (validated once, at the end), ``seed``; ``pretrained=None`` drops
    the ``Pretrained`` init (random initialisation, the backbone's own)."""
    pretrained = values.pop('pretrained')
    values['pretrained'] = pretrained or 'unused'
    text = edit_recipe(**values)
    text += DIGITS_PIPELINE + f"""
train_dataloader['num_workers'] = 0
val_dataloader['num_workers'] = 0
train_cfg = dict(by_epoch=True, max_epochs={epochs}, val_interval={epochs})
param_scheduler[1].update(end={epochs}, T_max={epochs - 1})
randomness = dict(seed={seed}, deterministic=False)
default_hooks['checkpoint'] = dict(
    type='CheckpointHook', interval={epochs if save else 10**6})
log_level = 'WARNING'
"""
    if pretrained is None:
        text += "model['backbone'].pop('init_cfg')\n"
    dst.write_text(text)
    return dst


def train(work_dir, data_root, num_classes, pretrained, epochs, seed,
          save=False):
    """Train one copy of the recipe in-process; returns (held-out top-1 in
    %, the model as initialised: a copy of its state dict)."""
    work_dir.mkdir()
    cfg = Config.fromfile(str(copy_recipe(
        work_dir / 'cfg.py', epochs, seed, save, data_root=str(data_root),
        num_classes=num_classes, pretrained=pretrained, img_size=IMG_SIZE)))
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    runner._init_model_weights()  # train() does not initialise twice
    start = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    return runner.message_hub.get_scalar('val/accuracy/top1').current(), start


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """Digits 0-4 as PNG folders: 40 per digit to pre-train on, the first
    10 of them to fine-tune on; the held-out split for both."""
    root = tmp_path_factory.mktemp('digits')
    for name, per_class in (('digits04', '40'), ('digits04_10', '10')):
        assert FOLDERS.main([str(root / name), '--classes', '0', '1', '2',
                             '3', '4', '--train-per-class', per_class]) == 0
    return root


@pytest.fixture(scope='module')
def checkpoint(digits):
    """SOFT-tiny pre-trained on digits 0-4 (10 epochs, ~20 s on a core)."""
    acc, _ = train(digits / 'pretrain', digits / 'digits04', 5, None,
                   epochs=10, seed=0, save=True)
    assert acc > 90, f'the pre-training did not learn ({acc:.1f} %)'
    return digits / 'pretrain' / 'epoch_10.pth'


@pytest.fixture(scope='module')
def symmetries_checkpoint(digits):
    """SOFT-tiny pre-trained on digits 0-4 turned and mirrored: the eight
    symmetries of the square, each its own class (40 classes, 40 images
    per class, 5 epochs, ~90 s on a core); and 5-9 to fine-tune on, 5 and
    10 images per digit."""
    assert FOLDERS.main([str(digits / 'sym04'), '--classes', '0', '1', '2',
                         '3', '4', '--train-per-class', '40', '--rotations',
                         '--flips']) == 0
    for name, per_class in (('digits59_5', '5'), ('digits59_10', '10')):
        assert FOLDERS.main([str(digits / name), '--classes', '5', '6', '7',
                             '8', '9', '--train-per-class', per_class]) == 0
    acc, _ = train(digits / 'pretrain_sym', digits / 'sym04', 40, None,
                   epochs=5, seed=0, save=True)
    # 77.2 % measured (chance: 2.5 %; a 0 or an 8 turned by 180 degrees is
    # itself, a mirrored 1 too).
    assert acc > 60, f'the pre-training did not learn ({acc:.1f} %)'
    return digits / 'pretrain_sym' / 'epoch_5.pth'


def compare(tmp_path, data_root, checkpoint, epochs, seeds):
    """Fine-tune from ``checkpoint`` and from random initialisation, seed by
    seed; returns the two lists of held-out top-1 (%)."""
    tmp_path.mkdir(exist_ok=True)
    source = torch.load(checkpoint, weights_only=True)['state_dict']
    key = 'backbone.stages.2.1.attn.v.weight'
    pre, scratch = [], []
    for seed in seeds:
        acc, start = train(tmp_path / f'pre{seed}', data_root, 5,
                           str(checkpoint), epochs=epochs, seed=seed)
        # The run started from the file: every backbone tensor (the head
        # is new, initialised for the classes of the fine-tune).
        for name, value in start.items():
            if name.startswith('backbone.'):
                assert torch.equal(value, source[name]), name
        pre.append(round(float(acc), 1))
        acc, start = train(tmp_path / f'scratch{seed}', data_root, 5, None,
                           epochs=epochs, seed=seed)
        assert not torch.equal(start[key], source[key])
        scratch.append(round(float(acc), 1))
    return pre, scratch


def test_rotations_are_classes(tmp_path):
    assert FOLDERS.main([str(tmp_path), '--classes', '1', '--rotations',
                         '--train-per-class', '2']) == 0
    names = sorted(p.name for p in (tmp_path / 'train').iterdir())
    assert names == ['1_r000', '1_r090', '1_r180', '1_r270']
    import cv2
    upright, turned = (cv2.imread(str(next(
        (tmp_path / 'train' / name).glob('*.png'))), cv2.IMREAD_GRAYSCALE)
        for name in ('1_r000', '1_r090'))
    assert (turned == upright[:, ::-1].T).all()  # 90 degrees anticlockwise
    assert len(list((tmp_path / 'val' / '1_r180').glob('*.png'))) > 10


def test_flips_are_classes(tmp_path):
    assert FOLDERS.main([str(tmp_path), '--classes', '2', '--rotations',
                         '--flips', '--train-per-class', '1']) == 0
    names = sorted(p.name for p in (tmp_path / 'train').iterdir())
    assert names == [f'2_r{a:03d}{m}' for a in (0, 90, 180, 270)
                     for m in ('', '_m')]
    import cv2
    upright, mirrored, turned = (cv2.imread(str(next(
        (tmp_path / 'train' / name).glob('*.png'))), cv2.IMREAD_GRAYSCALE)
        for name in ('2_r000', '2_r000_m', '2_r090_m'))
    assert (mirrored == upright[:, ::-1]).all()
    assert (turned == mirrored[:, ::-1].T).all()  # mirrored, then turned
    assert FOLDERS.main([str(tmp_path / 'flips'), '--classes', '2',
                         '--flips', '--train-per-class', '1']) == 0
    assert sorted(p.name for p in (tmp_path / 'flips' / 'train').iterdir()
                  ) == ['2', '2_m']


def test_pretrained_weights_carry_over(checkpoint, digits, tmp_path):
    """A new head, 10 images per digit, 5 epochs (10 steps): the pre-trained
    backbone is what makes the held-out digits right."""
    started = time.time()
    pre, scratch = compare(tmp_path, digits / 'digits04_10', checkpoint,
                           epochs=5, seeds=SEEDS)
    report = (f'pre-trained {pre}, random init {scratch} '
              f'({time.time() - started:.0f} s)')
    print(report)
    for a, b in zip(pre, scratch):
        assert a >= b + MARGIN, report


@pytest.mark.skipif(not os.environ.get('SOFT_MM_TRANSFER'),
                    reason='a measurement (~5 min for six seeds): '
                    'SOFT_MM_TRANSFER=0,1,2,3,4,5')
def test_new_digits_measurement(symmetries_checkpoint, digits, tmp_path):
    """New digits 5-9 from the symmetries pre-training (0-4 only), at two
    budgets: 5 images per digit for 20 epochs, 10 images per digit for 10
    epochs (20 steps each); prints both accuracies per seed. No per-seed
    claim (docs/finetune.md); at 10 per digit the mean is asserted."""
    value = os.environ['SOFT_MM_TRANSFER']
    seeds = [int(s) for s in value.split(',')] if ',' in value else SEEDS
    for per_digit, epochs in ((5, 20), (10, 10)):
        started = time.time()
        pre, scratch = compare(tmp_path / f'ft{per_digit}',
                               digits / f'digits59_{per_digit}',
                               symmetries_checkpoint, epochs, seeds)
        gaps = [round(a - b, 1) for a, b in zip(pre, scratch)]
        print(f'new digits 5-9, {per_digit} per digit, {epochs} epochs: '
              f'pre-trained {pre}, random init {scratch}, gaps {gaps} '
              f'({time.time() - started:.0f} s)')
    # What held for every pre-training tried (mean gap +2.5 to +5.1 points
    # over seeds 0-5 at 10 per digit): better on average, not per seed.
    assert sum(pre) > sum(scratch), (pre, scratch)
