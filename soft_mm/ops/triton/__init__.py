# Copyright (c) soft_mm contributors. All rights reserved.
"""Triton kernels of the SOFT attention op (``impl='triton'``).

``backend.py`` is the backend (it imports triton on first use); the kernel
modules ``gaussian.py``, ``newton.py`` and ``attention.py`` import triton
and define their kernels when they are imported, which only the backend's
methods (and ``tools/gpu/compile_triton.py``) do.
"""
from .backend import TritonBackend

__all__ = ['TritonBackend']
