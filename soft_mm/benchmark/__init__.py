# Copyright (c) soft_mm contributors. All rights reserved.
"""Benchmarks with one measurement protocol (``protocol.py``): interleaved
rounds, a fresh process per measurement (``measure.py``, the one timing
loop), min / median / max, load checks (``machine.py``); what is measured
(``subjects.py``) and what is written (``report.py``). Needs torch alone:
the op benchmark runs on GPU machines without OpenMMLab.
``tools/analysis_tools/benchmark.py`` (models) and ``benchmark_ops.py``
(the attention op) are its command lines."""
from .protocol import CURRENT_ROOT, Benchmark, Case, run_benchmark, summarise

__all__ = ['Case', 'Benchmark', 'run_benchmark', 'summarise', 'CURRENT_ROOT']
