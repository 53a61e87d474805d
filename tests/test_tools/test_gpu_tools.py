# Copyright (c) soft_mm contributors. All rights reserved.
"""What of tools/gpu/ can run without a GPU: the sanitizer workload on the
CPU kernels, its refusal of a device without kernels, and check.sh's time
budget (the script itself needs a GPU)."""
import os.path as osp
import re
import subprocess
import time

import pytest

from soft_mm.ops import ext
from tool_utils import ROOT, load_script, run_main

EXERCISE = load_script('tools/gpu/exercise_ops.py')


@pytest.mark.skipif('cpu' not in ext.ext_device_types(),
                    reason='soft_mm._ext not built (tools/setup.sh builds it)')
def test_exercise_runs_every_cpu_kernel(capsys):
    code, out, err = run_main(EXERCISE, capsys, '--device', 'cpu')
    assert code == 0, err
    # 2 dtypes x plain/SOFT-Norm x every shape.
    assert f'exercised {2 * 2 * len(EXERCISE.SHAPES)} forward+backward' in out


@pytest.mark.skipif('cuda' in ext.ext_device_types(),
                    reason='the CUDA kernels are built here')
def test_exercise_refuses_device_without_kernels(capsys):
    code, _, err = run_main(EXERCISE, capsys, '--device', 'cuda')
    assert code == 1
    assert 'has no cuda kernels' in err


def budget_in_check_sh(deadline: int, elapsed: int, want: int) -> int:
    """check.sh's ``budget WANT`` with ``elapsed`` seconds gone."""
    text = open(osp.join(ROOT, 'tools', 'gpu', 'check.sh')).read()
    functions = re.search(r'^left\(\).*?^budget\(\).*?^}\n', text,
                          re.S | re.M)
    assert functions, 'left()/budget() not found in check.sh'
    start = int(time.time()) - elapsed
    script = (f'set -euo pipefail\n{functions[0]}\n'
              f'DEADLINE={deadline}; SCRIPT_START={start}; budget {want}\n')
    return int(subprocess.run(['bash', '-c', script], capture_output=True,
                              text=True, check=True).stdout)


def test_check_sh_steps_end_before_the_deadline():
    # A second may tick between the two clocks: ranges, not exact values.
    assert budget_in_check_sh(540, 100, 180) == 180       # plenty left
    assert 127 <= budget_in_check_sh(540, 400, 180) <= 130  # what is left
    assert budget_in_check_sh(540, 515, 180) == 0         # too little: skip
    assert 287 <= budget_in_check_sh(300, 0, 500) <= 290
