# Copyright (c) soft_mm contributors. All rights reserved.
"""The resolution sweep's curves: power-law fits, predictions of a point
from the smaller ones, the skip rule, the exponents per range, the plots."""
import pytest

from soft_mm.benchmark import Case
from soft_mm.benchmark.sweep import (SweepGate, exponent_markdown,
                                     fit_exponents, fit_power, measured_points,
                                     pivot_markdown, plot_sweep, predict_point,
                                     sort_sizes, tokens)


def row(model, size, time_ms, peak, pass_='train', status='ok', rnd=1):
    """A measured row as the protocol writes it (settings included)."""
    return {'model': model, 'pass': pass_, 'height': size, 'width': size,
            'batch': 1, 'round': rnd, 'status': status, 'time_ms': time_ms,
            'peak_mem_MiB': peak}


def curve(model, k_time, k_mem, sizes=(224, 512, 1024), base=500.0):
    """Rows of a model whose time grows as tokens^k_time and whose memory
    above ``base`` as tokens^k_mem."""
    return [row(model, s, 1e-3 * tokens(s, s)**k_time,
                base + 1e-2 * tokens(s, s)**k_mem) for s in sizes]


def test_fit_power_recovers_exponent():
    k, c = fit_power([(x, 3.0 * x**1.7) for x in (10, 100, 1000)])
    assert k == pytest.approx(1.7) and c == pytest.approx(3.0)
    with pytest.raises(ValueError, match='distinct'):
        fit_power([(10, 1.0), (10, 2.0)])


def test_sort_sizes_by_pixels():
    assert sort_sizes([(2048, 2048), (1024, 2048), (1536, 1536),
                       (224, 224), (224, 224)]) == [
        (224, 224), (1024, 2048), (1536, 1536), (2048, 2048)]


def test_predict_point_from_the_two_largest_below():
    rows = curve('m', 1.0, 1.0) + curve('m', 1.0, 1.0, sizes=(64, ))
    points = measured_points(rows, 'm', 'train')
    n = tokens(2048, 2048)
    pred = predict_point(points, n)
    assert pred['time_ms'] == pytest.approx(1e-3 * n, rel=1e-6)
    assert pred['k_time'] == pytest.approx(1.0)
    # Memory: the growth above ~the smallest peak is extrapolated, so a
    # linear growth over a fixed cost is not mistaken for a flat curve
    # (a plain power law through the totals would say 1.9 GiB here).
    true = 500 + 1e-2 * n
    assert abs(pred['peak_MiB'] - true) / true < 0.15
    naive = points[-1]['peak_MiB'] * (n / points[-1]['tokens'])**fit_power(
        [(p['tokens'], p['peak_MiB']) for p in points[-2:]])[0]
    assert abs(naive - true) > 2 * abs(pred['peak_MiB'] - true)
    assert predict_point(points[:1], n) is None


def test_predict_point_from_two_points_only():
    """With nothing below the two fitted points the fixed cost is unknown:
    the total follows the power law (a fixed cost taken from the smaller
    of the two read a doubling of memory as tokens^3.2)."""
    rows = [row('m', 512, 8000.0, 834.0), row('m', 724, 11300.0, 1534.0)]
    points = measured_points(rows, 'm', 'train')
    n = 4 * points[-1]['tokens']
    pred = predict_point(points, n)
    assert pred['base_MiB'] == 0
    k = fit_power([(p['tokens'], p['peak_MiB']) for p in points])[0]
    assert pred['k_mem'] == pytest.approx(k) and 0.8 < k < 1.0
    assert pred['peak_MiB'] == pytest.approx(1534.0 * 4**k)


def test_gate_skips_what_the_curve_puts_over_budget():
    rows = curve('quad', 2.0, 1.0) + curve('lin', 1.0, 1.0)
    gate = SweepGate(max_step_s=60, max_mem_MiB=1e9)
    settings = dict(height=2048, width=2048, batch=1)
    settings['pass'] = 'train'
    big = Case(1, 'quad', {}, settings)
    why, fields = gate(big, rows)
    n = tokens(2048, 2048)
    assert fields['pred_ms'] == pytest.approx(1e-3 * n**2, rel=1e-3)
    assert 'tokens^2.00' in why and '60 s/step budget' in why
    assert gate(Case(1, 'lin', {}, settings), rows) is None
    # Memory budget alone.
    why, _ = SweepGate(1e9, 600)(Case(1, 'lin', {}, settings), rows)
    assert 'GiB memory budget' in why
    # A failed smaller point stops the model's larger ones.
    failed = rows + [dict(row('lin', 1536, '', ''), status='error',
                          note='killed by signal 9 (out of memory?)')]
    why, fields = gate(Case(1, 'lin', {}, settings), failed)
    assert '1536x1536 already ended in error' in why and fields == {}
    # Too few points below: run it.
    small = dict(settings, height=384, width=384)
    assert gate(Case(1, 'quad', {}, small), rows) is None


def test_gate_predicts_from_the_same_settings_only():
    """Rows of the same model in another task (or batch) are another curve:
    a detector at 800x1333 says nothing about a segmentor at 1024x2048."""
    gate = SweepGate(max_step_s=60, max_mem_MiB=1e9)
    settings = dict(task='upernet', height=2048, width=2048, batch=2)
    settings['pass'] = 'train'
    other = [dict(r, task='retinanet', batch=2)
             for r in curve('m', 2.0, 1.0)]
    assert gate(Case(1, 'm', {}, settings), other) is None
    batch1 = [dict(r, task='upernet', batch=1) for r in curve('m', 2.0, 1.0)]
    assert gate(Case(1, 'm', {}, settings), other + batch1) is None
    failed = other + [dict(row('m', 1536, '', ''), status='error',
                           task='retinanet', batch=2)]
    assert gate(Case(1, 'm', {}, settings), failed) is None
    own = [dict(r, task='upernet', batch=2) for r in curve('m', 2.0, 1.0)]
    why, fields = gate(Case(1, 'm', {}, settings), failed + batch1 + own)
    n = tokens(2048, 2048)
    assert fields['pred_ms'] == pytest.approx(1e-3 * n**2, rel=1e-3)
    assert 'tokens^2.00' in why


def test_fit_exponents_per_range_and_markdown():
    rows = curve('soft', 1.0, 1.0, sizes=(224, 384, 512, 1024, 2048))
    rows += curve('vit', 2.0, 2.0, sizes=(224, 512), base=0.0)
    fits = fit_exponents(rows, ['soft', 'vit'], ['train'])
    by = {(f['model'], f['range']): f for f in fits}
    for rng in ('224-512', '512-1024', '1024-2048'):
        assert by['soft', rng]['k_time'] == pytest.approx(1.0)
    assert by['vit', '224-512']['k_time'] == pytest.approx(2.0)
    assert by['vit', '224-512']['k_mem'] == pytest.approx(2.0)
    # A fixed cost under the growth: the exponent of the totals is lower.
    assert 0 < by['soft', '224-512']['k_mem'] < 1.0
    assert by['vit', '512-1024']['k_time'] is None
    assert by['soft', '224-512']['points'] == 3
    text = '\n'.join(exponent_markdown(fits))
    assert '| soft | train | 1.00 /' in text
    assert '| vit | train | 2.00 /' in text and 'n/a' in text


def test_plot_sweep_writes_pngs(tmp_path):
    rows = curve('soft', 1.0, 1.0)
    rows.append(dict(row('soft', 2048, '', ''), status='skipped',
                     pred_ms=100.0, pred_MiB=900.0))
    files = plot_sweep(rows, ['soft', 'absent'], ['train', 'infer'], 'title',
                       str(tmp_path / 'sweep'))
    assert [f.rsplit('_', 1)[1] for f in files] == ['time.png',
                                                    'memory.png']
    for f in files:
        data = open(f, 'rb').read()
        assert data[:4] == b'\x89PNG' and len(data) > 5000


def test_pivot_shows_measured_and_predicted():
    rows = curve('soft', 1.0, 1.0)
    rows.append(dict(row('soft', 2048, '', ''), status='skipped',
                     pred_ms=4000.0, pred_MiB=2048.0))
    rows.append(dict(row('vit', 224, '', ''), status='error'))
    text = '\n'.join(pivot_markdown(rows, ['soft', 'vit'], ['train']))
    n = tokens(1024, 1024)
    t = 1e-3 * n / 1e3
    m = (500 + 1e-2 * n) / 1024
    assert f'| 1024x1024 | {n} | {t:.2f} / {m:.2f} |  |' in text
    assert f'| 2048x2048 | {tokens(2048, 2048)} | *4.0 / 2.00* |  |' in text
    assert '| 224x224 | 3136 |' in text and '| error |' in text
