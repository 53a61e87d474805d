# Copyright (c) soft_mm contributors. All rights reserved.
"""One measurement: the timing loop, peak memory, the subjects, and the
script a measurement's process runs."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from soft_mm.benchmark.measure import (RESULT_TAG, PeakMemory, measure,
                                       model_step, time_steps)
from soft_mm.benchmark.protocol import MEASURE_SCRIPT
from soft_mm.benchmark.subjects import model_subject
from soft_mm.ops import ext_device_types
from tool_utils import ROOT


def test_peak_memory_cpu_sees_an_allocation():
    # In a fresh process, as the benchmark measures: a long-lived test
    # process may serve the allocation from memory that is already resident.
    code = ('import torch\n'
            'from soft_mm.benchmark.measure import PeakMemory\n'
            "with PeakMemory('cpu') as mem:\n"
            '    x = torch.ones(16 * 2**20)  # 64 MiB\n'
            '    x += 1\n'
            '    del x\n'
            'print(mem.peak_bytes / 2**20)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_mib = float(proc.stdout.strip().splitlines()[-1])
    assert 60 <= peak_mib < 200


def test_peak_memory_is_relative_to_entry():
    keep = torch.ones(4 * 2**20)  # resident before: not counted
    with PeakMemory('cpu') as mem:
        pass
    assert mem.peak_bytes == mem.peak_bytes  # not nan on Linux
    assert mem.peak_bytes < 8 * 2**20
    del keep


def test_time_steps_inference_and_training():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU())
    x = torch.randn(8, 64)
    calls = []
    for train in (False, True):
        step = model_step(model, x, train, None)
        res = time_steps(lambda: calls.append(step()), 'cpu', iters=2,
                         warmup=1)
        assert len(res['times_s']) == 2 and all(t > 0
                                                for t in res['times_s'])
        assert res['peak_bytes'] >= 0 or math.isnan(res['peak_bytes'])
    assert len(calls) == 6  # 1 warm-up + 2 timed, twice
    assert model[0].weight.grad is not None
    with pytest.raises(ValueError, match='iters must be >= 1'):
        time_steps(lambda: None, 'cpu', iters=0, warmup=0)


def test_model_step_tensor_mode_calls_the_classifier_for_logits():
    seen = []

    class Classifier(torch.nn.Module):

        def forward(self, x, mode='loss'):
            seen.append(mode)
            return (x.sum(1), )

    model_step(Classifier(), torch.randn(2, 3), False, None, True)()
    assert seen == ['tensor']


def test_measure_a_toy_model_and_a_classifier():
    base = dict(device='cpu', threads=1, iters=1, warmup=0, height=32,
                width=32, batch=2, precision='fp32', compile='off')
    toy = measure(dict(base, subject=model_subject('toy', 'cls', (32, 32)),
                       **{'pass': 'train'}))
    assert toy['params'] == 3 * 8 * 9 + 8 + 8 * 8 * 9 + 8 + 8 * 10 + 10
    soft = measure(dict(base, **{'pass': 'infer'},
                        subject=model_subject('soft-tiny', 'cls', (32, 32))))
    assert round(soft['params'] / 1e6, 3) == 13.069
    assert soft['note'].startswith('soft op: auto -> ')


@pytest.mark.skipif('cpu' not in ext_device_types(),
                    reason='soft_mm._ext not built')
def test_measure_the_op_reports_its_error():
    base = dict(device='cpu', threads=1, iters=1, warmup=0)
    att = measure(dict(base, **{'pass': 'train'}, subject=dict(
        kind='attention', shape=[1, 2, 64, 4, 8], impl='ext')))
    assert att['extra']['err'] < 1e-5 and len(att['times_s']) == 1
    ref = measure(dict(base, **{'pass': 'infer'}, subject=dict(
        kind='attention', shape=[1, 2, 64, 4, 8], impl='reference')))
    assert ref['extra'] == {}  # the reference is what errors are against
    newton = measure(dict(base, **{'pass': 'infer'}, subject=dict(
        kind='newton', shape=[3, 9, 8], impl='ext')))
    assert newton['extra']['err'] < 1e-5


def test_the_script_prints_one_tagged_line(tmp_path):
    cfg = dict(subject=dict(kind='model', toy=8), device='cpu', threads=1,
               iters=2, warmup=0, height=16, width=16, batch=1,
               precision='fp32', compile='off', soft_root=ROOT,
               **{'pass': 'infer'})
    proc = subprocess.run(
        [sys.executable, '-P', MEASURE_SCRIPT, json.dumps(cfg)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    tagged = [ln for ln in proc.stdout.splitlines()
              if ln.startswith(RESULT_TAG)]
    assert proc.returncode == 0 and len(tagged) == 1, proc.stderr[-2000:]
    result = json.loads(tagged[0][len(RESULT_TAG):])
    assert result['status'] == 'ok' and len(result['times_s']) == 2
    # A subject that cannot be built is reported, not raised.
    cfg['subject'] = dict(kind='model', registry=dict(type='NoSuchModel'))
    proc = subprocess.run(
        [sys.executable, '-P', MEASURE_SCRIPT, json.dumps(cfg)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    result = json.loads(proc.stdout.splitlines()[-1][len(RESULT_TAG):])
    assert result['status'] == 'error' and 'NoSuchModel' in result['note']
