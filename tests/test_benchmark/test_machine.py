# Copyright (c) soft_mm contributors. All rights reserved.
"""The machine record and the busy rule."""
import os

import torch

from soft_mm.benchmark.machine import (LoadMonitor, busy_threshold,
                                       cpu_busy_seconds, machine_info)


def test_busy_rule_and_load_monitor():
    assert busy_threshold(2, 2) == 0.5 and busy_threshold(4, 2) == 1.0
    assert busy_threshold(16, 2) == 7.0 and busy_threshold(1, 4) == 0.5
    mon = LoadMonitor(2, 2, loadavg=lambda: (2.3, 1.0, 1.0))
    assert mon.read('during', own=2) == (2.3, False)  # 0.3 is others'
    assert mon.read('before')[1] is True and len(mon.warnings) == 1
    assert mon.others_busy('x', 0.2) is False
    assert mon.others_busy('x', 0.9) is True
    mon = LoadMonitor(2, 2, threshold=5, loadavg=lambda: (4, 4, 4))
    assert mon.read('before') == (4.0, False)


def test_machine_info():
    info = machine_info('cpu', 2)
    assert info['threads'] == 2 and info['torch'] == torch.__version__
    assert info['nproc'] == len(os.sched_getaffinity(0))
    assert cpu_busy_seconds() > 0
