# Copyright (c) soft_mm contributors. All rights reserved.
"""What is measured: the op's shapes follow SOFT-tiny, model subjects."""
import importlib.util

import pytest

from soft_mm.benchmark import allocators
from soft_mm.benchmark.allocators import ALLOCATORS
from soft_mm.benchmark.subjects import (DEFAULT_TABLES, DENSE_TABLES,
                                        attention_cases, dense_tables,
                                        model_cases, model_subject,
                                        model_tables, newton_cases,
                                        stage_shape, static_skip, table_title,
                                        tiny_stages)


def test_op_shapes_follow_the_arch_zoo():
    assert stage_shape(224, 1, 64) == (64, 2, 3136, 49, 32)
    assert stage_shape(224, 3, 1) == (1, 10, 196, 49, 32)
    assert stage_shape(512, 2, 1) == (1, 4, 4096, 256, 32)
    pytest.importorskip('mmpretrain')
    from soft_mm.models.backbones import SOFT
    tiny = SOFT.arch_zoo['tiny']
    assert tiny_stages() == {
        i + 1: (tiny['num_heads'][i], sr,
                tiny['embed_dims'][i] // tiny['num_heads'][i])
        for i, sr in enumerate(SOFT.arch_defaults['sr_ratios'])
    }


def test_model_subjects():
    soft = model_subject('soft-tiny-grid7', 'backbone', (64, 64))
    assert soft['imports'] == ['soft_mm']
    assert soft['registry']['landmark_grid'] == 7
    assert soft['registry']['out_indices'] == (0, 1, 2, 3)
    assert 'with_cp' not in soft['registry']
    cp = model_subject('soft-tiny-grid7-cp', 'cls', (64, 64))
    assert cp['registry']['backbone']['with_cp'] is True
    assert cp['registry']['backbone']['landmark_grid'] == 7
    deit = model_subject('deit-tiny', 'cls', (32, 48))
    assert deit['tensor_mode'] and deit['registry']['backbone'][
        'img_size'] == [32, 48]
    assert model_subject('pvt-v2-b1', 'backbone', (64, 64))['features_only']
    with pytest.raises(ValueError, match='unknown model'):
        model_subject('resnet', 'cls', (32, 32))
    assert static_skip('deit-tiny', 'backbone') == ('DeiT has no feature '
                                                    'pyramid')
    if importlib.util.find_spec('timm') is None:
        assert static_skip('pvt-v2-b1', 'cls') == 'timm not installed'
    assert [t[:3] for t in DEFAULT_TABLES] == [
        ('train', (224, 224), 8), ('infer', (224, 224), 8),
        ('train', (1024, 1024), 1)]


def test_op_tables():
    """Newton rows per distinct (B*h, m): stage 1 at batch 2 and stage 2
    at batch 1 share (4, 4)."""
    cases, leads = newton_cases([64], [1, 2, 3], [1, 2], [('kernel', 'ext')],
                                13)
    assert list(leads.values()) == [[64, 1, 2, 4], [64, 1, 4, 4],
                                    [64, 2, 8, 4], [64, 3, 10, 4],
                                    [64, 3, 20, 4]]
    assert [c.table for c in cases] == [13, 14, 15, 16, 17]
    cases, leads = attention_cases(
        [64], [1, 2, 3], [1, 2],
        [('fused', 'ext', False), ('reference', 'reference', False)])
    assert len(leads) == 12 and len(cases) == 24
    assert leads[2] == [64, 1, 1, 2, 256, 4, 'fwd+bwd']
    assert cases[0].subject == dict(kind='attention', shape=[1, 2, 256, 4, 32],
                                    impl='ext', compile=False, norm=False,
                                    dtype='float32')


def test_model_tables_and_cases():
    tables = model_tables(['toy', 'soft-tiny-before'], [(32, 48)], [2],
                          ['train'], ['fp32', 'amp'], ['off'])
    assert [(t['table'], t['precision']) for t in tables] == [(1, 'fp32'),
                                                              (2, 'amp')]
    assert table_title(tables[1]) == 'train 32x48, batch 2, amp, eager'
    cases = model_cases(tables, 'cls', skip=['toy@32x48@train'])
    assert [(c.name, c.skip) for c in cases[:2]] == [
        ('toy', '--skip'), ('soft-tiny-before', 'no --before-root given')]
    assert cases[0].settings == {'pass': 'train', 'height': 32, 'width': 48,
                                 'batch': 2, 'precision': 'fp32',
                                 'compile': 'off'}
    cases = model_cases(tables, 'cls', before_root='/old')
    assert cases[1].root == '/old' and cases[1].note == ('soft_mm of '
                                                         '--before-root')
    assert model_tables(['swin-t']) == []  # not in the default tables


def test_cases_per_allocator_setting():
    tables = model_tables(['toy'], [(32, 32)], [1], ['infer'])
    cases = model_cases(tables, 'cls', skip=['toy@32x32'],
                        allocators=['default', 'glibc-keep'])
    assert [(c.name, c.skip) for c in cases] == [
        ('toy', '--skip'), ('toy+glibc-keep', '--skip')]
    assert cases[0].env == {}
    assert cases[1].env == ALLOCATORS['glibc-keep']
    assert cases[1].env is not ALLOCATORS['glibc-keep']  # a copy
    with pytest.raises(ValueError, match='unknown allocator setting'):
        model_cases(tables, 'cls', allocators=['mimalloc'])


def test_a_preloaded_allocator_is_looked_up_once_per_setting(monkeypatch):
    tables = model_tables(['toy', 'toy-wide'], [(32, 32), (64, 64)], [1],
                          ['infer', 'train'])
    looked_up = []
    monkeypatch.setattr(allocators.ctypes.util, 'find_library',
                        lambda name: looked_up.append(name) or f'lib{name}.so')
    cases = model_cases(tables, 'cls',
                        allocators=['default', 'tcmalloc', 'jemalloc'])
    assert len(cases) == 4 * 2 * 3
    assert sorted(looked_up) == ['jemalloc', 'tcmalloc']
    preloaded = [c.env for c in cases if c.name.endswith('+tcmalloc')]
    assert preloaded == [{'LD_PRELOAD': 'libtcmalloc.so'}] * 8
    assert preloaded[0] is not preloaded[1]  # each case its own


def test_dense_tables_run_a_tasks_sizes_small_to_large():
    tables = dense_tables(['soft-norm-tiny'], ['upernet', 'retinanet'],
                          [(1024, 2048), (512, 512), (512, 1024)],
                          ['infer'])
    assert [(t['task'], t['size']) for t in tables] == [
        ('upernet', (512, 512)), ('upernet', (512, 1024)),
        ('upernet', (1024, 2048)), ('retinanet', (512, 512)),
        ('retinanet', (512, 1024)), ('retinanet', (1024, 2048))]
    assert [t['table'] for t in tables] == list(range(1, 7))
    default = dense_tables(passes=['infer'])
    assert [(t['task'], t['size']) for t in default] == list(DENSE_TABLES)
    upernet = [s for t, s in DENSE_TABLES if t == 'upernet']
    assert upernet == sorted(upernet, key=lambda s: s[0] * s[1])
    assert len(upernet) >= 3  # two to predict the largest from


def test_a_preloaded_allocator_that_is_missing_is_skipped(monkeypatch):
    tables = model_tables(['toy'], [(32, 32)], [1], ['infer'])
    monkeypatch.setattr(allocators.ctypes.util, 'find_library',
                        lambda name: None)
    case, = model_cases(tables, 'cls', allocators=['jemalloc'])
    assert case.name == 'toy+jemalloc' and case.env == {}
    assert case.skip == ('libjemalloc.so not found (Debian / Ubuntu: apt '
                         'install libjemalloc2)')
    monkeypatch.setattr(allocators.ctypes.util, 'find_library',
                        lambda name: f'lib{name}.so.4')
    case, = model_cases(tables, 'cls', allocators=['tcmalloc'])
    assert case.skip is None
    assert case.env == {'LD_PRELOAD': 'libtcmalloc.so.4'}
