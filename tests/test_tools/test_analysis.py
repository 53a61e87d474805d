# Copyright (c) soft_mm contributors. All rights reserved.
"""The analysis tools: get_flops.py (SOFT's op counted explicitly), and the
command lines of the benchmarks (their protocol: ``tests/test_benchmark``)."""
import csv
import ctypes.util
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

import soft_mm  # noqa: F401
from soft_mm.apis.complexity import NEWTON
from soft_mm.ops import ext_available
from tool_utils import ROOT, TINY_CFG, load_script


def load_tool(name):
    return load_script(f'tools/analysis_tools/{name}.py', register=True)


def test_get_flops_soft_tiny(capsys):
    tool = load_tool('get_flops')
    assert tool.main([TINY_CFG, '--shape', '224', '224']) == 0
    out = capsys.readouterr().out
    assert re.search(r'params: 13\.069 M', out)
    total = float(re.search(r'FLOPs \(multiply-accumulates\): ([\d.]+) G',
                            out)[1])
    newton = float(re.search(r'Newton iterations \(20 steps\): ([\d.]+) G',
                             out)[1])
    without = float(re.search(r'without them ([\d.]+) G', out)[1])
    # 40 (layer x head) matrices of 49 x 49, 20 steps of 2 products.
    assert newton == pytest.approx(40 * 20 * 2 * 49**3 / 1e9, abs=1e-3)
    assert total == pytest.approx(without + newton, abs=2e-3)
    # The papers' 1.9 G (the Newton steps are what lifts the full count to
    # 2.17 G, see docs/model_zoo_tools.md).
    assert abs(without - 1.9) / 1.9 < 0.10
    assert 2.1 < total < 2.25
    rows = re.findall(r'\| (stage \d|norm \+ neck \+ head)\s*\|\s*([\d.]+) \|'
                      r'\s*([\d.]+) \|', out)
    assert [r[0] for r in rows][:4] == [f'stage {i}' for i in range(1, 5)]
    assert sum(float(r[2]) for r in rows) == pytest.approx(total, abs=0.01)


def test_get_flops_non_square_grows():
    tool = load_tool('get_flops')
    model = tool.build_model(TINY_CFG)
    _, _, small = tool.count(model, (128, 128))
    _, _, big = tool.count(model, (128, 256))
    # Twice the pixels: the official landmarks double too (16 -> 32 per
    # head), so the Newton work grows by 2^3 and the linears by ~2.
    assert big[NEWTON] == 8 * small[NEWTON]
    assert 1.9 < big['linear'] / small['linear'] < 2.0


def _bench_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


QUIET = dict(loadavg=lambda: (0.0, 0.0, 0.0), cpu_seconds=lambda: 0.0)


def test_benchmark_interleaves_rounds_in_fresh_processes(tmp_path, capsys):
    """The protocol end to end on two torch-only toy models (no timing
    asserted): A B A B, one process per measurement, min/median/max."""
    tool = load_tool('benchmark')
    code = tool.main([
        '--models', 'toy', 'toy-wide', '--sizes', '32', '--batch-sizes', '1',
        '--passes', 'train', '--rounds', '2', '--iters', '2', '--warmup', '1',
        '--out-dir', str(tmp_path)
    ], **QUIET)
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _bench_rows(tmp_path / 'benchmark_cls.csv')
    assert [(r['round'], r['model']) for r in rows] == [
        ('1', 'toy'), ('1', 'toy-wide'), ('2', 'toy'), ('2', 'toy-wide')]
    assert all(r['status'] == 'ok' for r in rows), rows
    for r in rows:
        iters = [float(t) for t in r['iter_ms'].split(';')]
        assert len(iters) == 2 and float(r['time_ms']) > 0
        assert float(r['peak_mem_MiB']) >= 0 and r['threads'] == '2'
        assert r['busy'] == ''  # the faked quiet machine
    assert 'WARNING' not in out
    table = (tmp_path / 'benchmark_cls.md').read_text()
    line, = [ln for ln in table.splitlines() if ln.startswith('| toy-wide')]
    cells = [c.strip() for c in line.strip('|').split('|')]
    lo, med, hi = (float(c) for c in cells[1:4])
    assert lo <= med <= hi and cells[10] == '2/2'
    assert float(cells[8]) > float(cells[6])  # the process holds more
    base, = [ln for ln in table.splitlines() if ln.startswith('| toy |')]
    assert '| 1.00x |' in base  # the first model is the baseline here
    for text in (out, table):
        assert f'nproc {len(os.sched_getaffinity(0))} ' in text
        assert torch.__version__ in text and '2 threads' in text
    header = json.loads(
        (tmp_path / 'benchmark_cls.json').read_text())['header']
    assert header['threads'] == 2 and len(header['load_before']) == 3
    assert {d['label'] for d in header['loads']} >= {
        'before the run', 'round 2 start', 'after the run'}


def test_benchmark_warns_loudly_when_busy(tmp_path, capsys):
    tool = load_tool('benchmark')
    code = tool.main([
        '--models', 'toy', '--sizes', '32', '--passes', 'infer', '--rounds',
        '1', '--iters', '1', '--warmup', '0', '--out-dir', str(tmp_path)
    ], loadavg=lambda: (9.0, 8.0, 7.0), cpu_seconds=lambda: 0.0)
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'WARNING: THE MACHINE WAS BUSY' in out
    assert 'before the run: 1-min load average 9.00' in out
    assert 'WARNING: THE MACHINE WAS BUSY' in (
        tmp_path / 'benchmark_cls.md').read_text()
    row, = _bench_rows(tmp_path / 'benchmark_cls.csv')
    assert row['busy'] == 'yes' and row['load1_start'] == '9.0'


def test_benchmark_allocators_reach_the_measurement(tmp_path, capsys):
    """Each allocator setting is its own row, measured in a process that
    has its variables (as the process itself reports them)."""
    tool = load_tool('benchmark')
    code = tool.main([
        '--models', 'toy', '--sizes', '32', '--passes', 'infer', '--rounds',
        '1', '--iters', '1', '--warmup', '0', '--allocators', 'glibc-keep',
        'thp', 'jemalloc', '--out-dir', str(tmp_path)
    ], **QUIET)
    out = capsys.readouterr().out
    assert code == 0, out
    keep, thp, jemalloc = _bench_rows(tmp_path / 'benchmark_cls.csv')
    assert (keep['model'], thp['model']) == ('toy+glibc-keep', 'toy+thp')
    assert keep['status'] == thp['status'] == 'ok'
    assert 'MALLOC_MMAP_THRESHOLD_=1000000000000' in keep['note']
    assert 'MALLOC_TRIM_THRESHOLD_=' in keep['note']
    assert 'THP_MEM_ALLOC_ENABLE' not in keep['note']
    assert thp['note'] == 'THP_MEM_ALLOC_ENABLE=1'
    # Preloaded where it is installed, else skipped with the reason.
    library = ctypes.util.find_library('jemalloc')
    if library:
        assert jemalloc['status'] == 'ok'
        assert jemalloc['note'] == f'LD_PRELOAD={library}'
    else:
        assert jemalloc['status'] == 'skipped'
        assert 'apt install libjemalloc2' in jemalloc['note']
    # The first setting is the baseline when 'default' is not measured.
    table = (tmp_path / 'benchmark_cls.md').read_text()
    assert '| toy+glibc-keep |' in table


def test_benchmark_before_root_imports_that_checkout(tmp_path, capsys):
    """*-before models import soft_mm from --before-root in their own
    process (here the current tree itself, so that nothing is built)."""
    tool = load_tool('benchmark')
    code = tool.main([
        '--models', 'soft-tiny-before', '--sizes', '32', '--passes', 'infer',
        '--rounds', '1', '--iters', '1', '--warmup', '0', '--before-root',
        ROOT, '--out-dir', str(tmp_path)
    ], **QUIET)
    out = capsys.readouterr().out
    assert code == 0, out
    row, = _bench_rows(tmp_path / 'benchmark_cls.csv')
    assert row['status'] == 'ok', row
    assert row['params_M'] == '13.069'
    assert 'soft op: auto -> ' in row['note']
    assert 'soft_mm of --before-root' in row['note']


def test_benchmark_records_failures_and_skips(tmp_path, capsys):
    tool = load_tool('benchmark')
    code = tool.main([
        '--mode', 'backbone', '--models', 'deit-tiny', 'toy', '--sizes', '32',
        '--passes', 'infer', '--rounds', '2', '--skip', 'toy@32x32',
        '--out-dir', str(tmp_path)
    ], **QUIET)
    assert code == 1  # nothing ran
    rows = _bench_rows(tmp_path / 'benchmark_backbone.csv')
    # Round 1 says why; no process was started and no row repeats it.
    assert [(r['model'], r['status']) for r in rows] == [
        ('deit-tiny', 'skipped'), ('toy', 'skipped')]
    assert 'feature pyramid' in rows[0]['note'] and rows[1]['note'] == '--skip'
    assert rows[0]['wall_s'] == ''


def test_benchmark_default_tables_and_pvt_without_timm(tmp_path):
    tool = load_tool('benchmark')
    args = tool.parse_args(['--models', 'deit-tiny', 'pvt-v2-b1'])
    # The three default tables, reduced to the selected models.
    assert [(t['pass_'], t['size'], t['batch']) for t in args.tables] == [
        ('train', (224, 224), 8), ('infer', (224, 224), 8),
        ('train', (1024, 1024), 1)]
    assert all(t['models'] == ('pvt-v2-b1', 'deit-tiny') for t in args.tables)
    assert args.threads == 2 and args.device == 'cpu'
    cases = tool.model_cases(args.tables, args.mode)
    if importlib.util.find_spec('timm') is None:
        assert cases[0].skip == 'timm not installed'
    args = tool.parse_args([])
    assert args.tables[0]['models'][0] == 'soft-tiny'
    assert args.tables[2]['models'][0] == 'soft-tiny-grid7'
    assert len(tool.parse_args(['--compile', 'off', 'on']).tables) == 6


@pytest.mark.parametrize('argv, message', [
    (['--rounds', '0'], '--rounds'),
    (['--iters', '0'], '--iters'),
    (['--warmup', '-1'], '--warmup'),
    (['--compile', 'on', '--warmup', '0'], 'needs --warmup >= 1'),
    (['--models', 'soft-tiny-before'], 'need --before-root'),
    (['--before-root', '/nonexistent'], 'no soft_mm/__init__.py'),
    (['--batch-sizes', '2'], 'apply with --sizes only'),
    (['--models', 'swin-t'], 'in the default tables'),
    (['--models', 'toy', '--sizes', '32', '--baseline', 'deit-tiny'],
     'not among the models'),
    (['--sizes', '0x4'], 'use N or HxW'),
    (['--busy-load', '-1'], '--busy-load'),
    (['--device', 'potato'], 'not a device'),
    (['--allocators', 'mimalloc'], 'invalid choice'),
    (['--allocators', 'thp', 'thp'], 'a setting given twice'),
    (['--sweep', '--allocators', 'default', 'thp'], 'compare allocators'),
])
def test_benchmark_bad_arguments(argv, message, capsys):
    tool = load_tool('benchmark')
    with pytest.raises(SystemExit) as exc:
        tool.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def ratio_bounds(num: str, den: str):
    """Smallest and largest ``num / den`` of the unrounded values behind two
    printed numbers."""

    def interval(text):
        half = 0.5 * 10**-len(text.partition('.')[2])
        return float(text) - half, float(text) + half

    (n_lo, n_hi), (d_lo, d_hi) = interval(num), interval(den)
    return n_lo / d_hi, n_hi / max(d_lo, 1e-12)


@pytest.mark.skipif(not ext_available(),
                    reason='benchmark_ops.py needs soft_mm._ext')
def test_benchmark_ops_prints_both_tables(tmp_path):
    """benchmark_ops.py end to end on tiny shapes (no timing asserted)."""
    cmd = [sys.executable,
           osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_ops.py'),
           '--device', 'cpu', '--sizes', '64', '--batches', '1',
           '--stages', '1', '2', '--rounds', '1', '--repeat', '1',
           '--warmup', '0', '--no-compile', '--out-dir', str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=900).stdout
    rows = [r for r in out.splitlines() if r.startswith('| 64 |')]
    attention = [r for r in rows if '| fwd' in r]
    newton = [r for r in rows if '| fwd' not in r]
    # 2 stages x (fwd, fwd+bwd); one Newton row per stage.
    assert len(attention) == 4 and len(newton) == 2, out
    for row in attention:
        cells = [c.strip() for c in row.strip('|').split('|')]
        # size stage B h n m pass | 2 x ms | 2 x MiB | 2 ratios | fused err
        assert len(cells) == 14, row
        fused_ms, ref_ms = float(cells[7]), float(cells[8])
        assert fused_ms > 0 and ref_ms > 0 and float(cells[13]) < 1e-3
        # The ratio comes from the unrounded times: it must lie within what
        # the printed (rounded) times allow, plus its own rounding.
        lo, hi = ratio_bounds(cells[8], cells[7])
        assert lo - 0.011 <= float(cells[11].rstrip('x')) <= hi + 0.011, row
    for row in newton:
        cells = [c.strip() for c in row.strip('|').split('|')]
        kernel_ms, ref_ms = float(cells[4]), float(cells[5])
        assert kernel_ms > 0 and ref_ms > 0
        lo, hi = ratio_bounds(cells[5], cells[4])
        assert lo - 0.011 <= float(cells[8].rstrip('x')) <= hi + 0.011, row
    assert 'interleaved rounds, a fresh python process' in out
    record = json.loads((tmp_path / 'benchmark_ops.json').read_text())
    assert len(record['summary']) == 4 * 2 + 2 * 2
    with open(tmp_path / 'benchmark_ops.csv') as f:
        assert {r['variant'] for r in csv.DictReader(f)} == {
            'fused', 'reference', 'kernel'}


def test_benchmark_sweep_skips_with_prediction_and_plots(tmp_path, capsys):
    """--sweep runs sizes small to large; with a tiny time budget every
    point after the two a curve needs is skipped with its prediction, and
    the exponents and both plots are written."""
    tool = load_tool('benchmark')
    code = tool.main([
        '--sweep', '--models', 'toy', 'toy-wide', '--sizes', '128', '32',
        '64', '--passes', 'infer', '--rounds', '2', '--iters', '1',
        '--warmup', '0', '--max-step-s', '1e-9', '--out-dir', str(tmp_path)
    ], **QUIET)
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _bench_rows(tmp_path / 'benchmark_sweep.csv')
    # Sorted by pixels; round 2 repeats the measured points only.
    assert [(r['round'], r['model'], r['height'], r['status'])
            for r in rows] == [
        ('1', 'toy', '32', 'ok'), ('1', 'toy-wide', '32', 'ok'),
        ('1', 'toy', '64', 'ok'), ('1', 'toy-wide', '64', 'ok'),
        ('1', 'toy', '128', 'skipped'), ('1', 'toy-wide', '128', 'skipped'),
        ('2', 'toy', '32', 'ok'), ('2', 'toy-wide', '32', 'ok'),
        ('2', 'toy', '64', 'ok'), ('2', 'toy-wide', '64', 'ok')]
    skipped = rows[4]
    assert float(skipped['pred_ms']) > 0 and float(skipped['pred_MiB']) > 0
    assert 'predicted' in skipped['note'] and 's/step budget' in skipped[
        'note']
    report = (tmp_path / 'benchmark_sweep.md').read_text()
    assert '## Fitted exponents' in report
    line, = [ln for ln in report.splitlines()
             if ln.startswith('| toy | infer |')]
    assert 'n/a' in line  # 32 and 64 are below the first range (224-512)
    for kind in ('time', 'memory'):
        png = tmp_path / f'benchmark_sweep_{kind}.png'
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert f'benchmark_sweep_{kind}.png' in report


def test_benchmark_sweep_rejects_backbone_mode(capsys):
    tool = load_tool('benchmark')
    with pytest.raises(SystemExit):
        tool.main(['--sweep', '--mode', 'backbone'])
    assert '--sweep measures classifiers' in capsys.readouterr().err
