# Copyright (c) soft_mm contributors. All rights reserved.
"""What of tools/gpu/ and the op benchmark can run without a GPU: the
sanitizer workload on the CPU kernels (C++, and Triton's through the
interpreter), its refusals, check.sh's plan and time budget in its dry-run
mode (the real run needs a GPU)."""
import os
import re
import subprocess
import sys
import time

import pytest

from soft_mm.ops import ext, get_backend
from tool_utils import ROOT, load_script, run_main

EXERCISE = load_script('tools/gpu/exercise_ops.py')


@pytest.mark.skipif('cpu' not in ext.ext_device_types(),
                    reason='soft_mm._ext not built (tools/setup.sh builds it)')
def test_exercise_runs_every_cpu_kernel(capsys):
    code, out, err = run_main(EXERCISE, capsys, '--device', 'cpu', '--check')
    assert code == 0, err
    # 2 dtypes x plain/SOFT-Norm x every shape.
    assert f'exercised {2 * 2 * len(EXERCISE.SHAPES)} forward+backward' in out
    assert 'forward matches the reference' in out


@pytest.mark.skipif('cuda' in ext.ext_device_types(),
                    reason='the CUDA kernels are built here')
def test_exercise_refuses_device_without_kernels(capsys):
    code, _, err = run_main(EXERCISE, capsys, '--device', 'cuda')
    assert code == 1
    assert 'without cuda kernels' in err


@pytest.mark.skipif(get_backend('triton').import_error() is not None,
                    reason='triton not importable')
def test_exercise_triton_under_the_interpreter():
    """The Triton workload on CPU (TRITON_INTERPRET=1 must precede the
    triton import, hence a fresh interpreter)."""
    env = dict(os.environ, TRITON_INTERPRET='1')
    proc = subprocess.run(
        [sys.executable, 'tools/gpu/exercise_ops.py', '--device', 'cpu',
         '--impl', 'triton', '--check'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    # float32 only under the interpreter: plain/SOFT-Norm x every shape.
    runs = 2 * len(EXERCISE.SHAPES)
    assert (f'exercised {runs} forward+backward runs of the triton kernels '
            'on cpu') in proc.stdout
    assert 'forward matches the reference' in proc.stdout


@pytest.mark.skipif(get_backend('triton').interpreting(),
                    reason='TRITON_INTERPRET=1 is set in this process')
def test_exercise_triton_refuses_cpu_without_interpreter(capsys):
    code, _, err = run_main(EXERCISE, capsys, '--device', 'cpu', '--impl',
                            'triton')
    assert code == 1
    assert 'TRITON_INTERPRET=1' in err or 'triton not' in err


def dry_run_check_sh(tmp_path, deadline=540, elapsed=0):
    """``DRY_RUN=1 bash tools/gpu/check.sh`` with ``elapsed`` seconds gone;
    returns (exit code, stdout)."""
    env = dict(os.environ, DRY_RUN='1', DEADLINE=str(deadline),
               SCRIPT_START=str(int(time.time()) - elapsed),
               OUT=str(tmp_path / 'out'))
    proc = subprocess.run(['bash', 'tools/gpu/check.sh'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def planned(out):
    """``[(step, budget seconds or 0 when skipped)]`` from check.sh."""
    steps = []
    for line in out.splitlines():
        run = re.match(r'== (.*) \(at most (\d+)s\)$', line)
        skip = re.match(r'== (.*): skipped \(deadline\)$', line)
        if run:
            steps.append((run[1], int(run[2])))
        elif skip:
            steps.append((skip[1], 0))
    return steps


def test_check_sh_plans_every_step_in_value_order(tmp_path):
    code, out = dry_run_check_sh(tmp_path)
    assert code == 0, out
    steps = planned(out)
    names = [name for name, _ in steps]
    assert names == [
        'benchmark benchmark_224_triton',
        'compute-sanitizer --tool memcheck, ext kernels',
        'compute-sanitizer --tool memcheck, triton kernels',
        'benchmark benchmark_sizes', 'benchmark benchmark_224_bf16',
        'compute-sanitizer --tool racecheck, ext kernels',
        'benchmark benchmark_224_compile'
    ], out
    # Plenty of time left: every step gets its own default budget.
    assert all(t == (180 if n.startswith('benchmark') else 150)
               for n, t in steps), steps
    assert '--triton' in out and '--batches 64 --rounds 1' in out


def test_check_sh_steps_end_before_the_deadline(tmp_path):
    # A second may tick between the two clocks: ranges, not exact values.
    _, out = dry_run_check_sh(tmp_path, 540, 400)
    assert all(127 <= t <= 130 for _, t in planned(out)), out
    _, out = dry_run_check_sh(tmp_path, 540, 515)
    assert planned(out) and all(t == 0 for _, t in planned(out)), out
    _, out = dry_run_check_sh(tmp_path, 300, 0)
    assert planned(out)[0][1] == 180  # min(180, 300 - 10)
