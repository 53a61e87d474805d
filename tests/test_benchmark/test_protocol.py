# Copyright (c) soft_mm contributors. All rights reserved.
"""The protocol: interleaved rounds in fresh processes, the statistics,
failures said once, and the soft_mm a measurement imports."""
import os.path as osp

from soft_mm.benchmark import Case, run_benchmark, summarise
from soft_mm.benchmark.protocol import (child_env, measure_in_fresh_process,
                                        parse_child_output)
from tool_utils import ROOT

QUIET = dict(loadavg=lambda: (0.0, 0.0, 0.0), cpu_seconds=lambda: 0.0)
SETTINGS = {'pass': 'infer', 'height': 16, 'width': 16, 'batch': 1,
            'precision': 'fp32', 'compile': 'off'}


def toy(table, name, width, **kwargs):
    return Case(table, name, dict(kind='model', toy=width), SETTINGS,
                **kwargs)


def test_rounds_interleave_and_summaries(tmp_path):
    cases = [toy(1, 'a', 8), toy(1, 'b', 16), toy(2, 'c', 8, skip='--skip'),
             toy(2, 'd', 8)]
    lines = []
    rows, summary, header = run_benchmark(
        cases, rounds=2, iters=2, warmup=0, threads=1, device='cpu',
        out_stem=str(tmp_path / 'x'), baselines={1: 'a', 2: 'd'},
        roots={'current': ROOT}, log=lines.append, **QUIET)
    # Round 1: a b c(skipped, said once) d; round 2: a b d.
    assert [(r['round'], r['model'], r['status']) for r in rows] == [
        (1, 'a', 'ok'), (1, 'b', 'ok'), (1, 'c', 'skipped'), (1, 'd', 'ok'),
        (2, 'a', 'ok'), (2, 'b', 'ok'), (2, 'd', 'ok')]
    assert len({r['seq'] for r in rows}) == 7
    assert (tmp_path / 'x.csv').read_text().count('\n') == 8
    by_name = {e['name']: e for e in summary}
    for name in 'abd':
        e = by_name[name]
        assert e['min_ms'] <= e['median_ms'] <= e['max_ms']
        assert e['rounds'] == '2/2' and e['status'] == 'ok'
    assert by_name['a']['time_ratio'] == 1
    assert by_name['c']['status'] == 'skipped'
    assert by_name['c']['note'] == '--skip'
    assert header['rounds'] == 2 and not header['warnings']
    assert any(line.startswith('--- round 2/2') for line in lines)


def test_summary_without_measurements():
    cases = [toy(1, 'a', 8)]
    entry, = summarise(cases, [], 3, {1: 'a'})
    assert entry['status'] == 'missing' and entry['rounds'] == '0/3'


def test_a_measurement_refuses_the_wrong_soft_mm(tmp_path):
    """A SOFT measurement whose soft_mm does not come from the root it was
    given (here a root without one, so the installed soft_mm is found
    instead) is an error naming both."""
    cfg = dict(subject=dict(kind='model', imports=['soft_mm'],
                            registry=dict(type='SOFT')),
               device='cpu', threads=1, iters=1, warmup=0,
               soft_root=str(tmp_path), height=32, width=32, batch=1,
               precision='fp32', compile='off', **{'pass': 'infer'})
    result, wall, _ = measure_in_fresh_process(
        cfg, 300, child_env(1, str(tmp_path)), cwd=str(tmp_path))
    assert result['status'] == 'error' and wall > 0
    assert 'imported soft_mm from' in result['note']
    assert osp.realpath(str(tmp_path)) in result['note']


def test_child_env_and_output():
    env = child_env(3, '/some/root', {'X': '1'})
    assert env['PYTHONPATH'].split(':')[0] == '/some/root'
    assert env['OMP_NUM_THREADS'] == '3' and env['X'] == '1'
    assert parse_child_output('noise\n') is None
