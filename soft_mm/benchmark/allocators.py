# Copyright (c) soft_mm contributors. All rights reserved.
"""CPU memory-allocator settings a measurement can run under.

At high resolution a training step allocates and frees gigabytes of
activations. glibc hands every block above its mmap threshold (at most
32 MiB when left dynamic) straight back to the kernel when it is freed, so
the next step faults the same memory in again, zero-filled, page by page:
system time that grows faster than the tokens. The settings here are
environment variables read when a process starts, so they are given to the
measurement's fresh process (``Case.env``) and recorded in its row.
"""
import ctypes.util
from typing import Dict, Optional, Tuple

# 10^12 bytes: above any block a step allocates, so glibc keeps all of them
# in its heap and reuses them (and never trims the heap back).
_NEVER = '1000000000000'

#: Name -> environment. ``default``: the allocator as a user gets it.
#: ``glibc-keep``: glibc keeps freed memory for reuse (no mmap per large
#: block, no trimming). ``thp``: PyTorch's CPU allocator aligns blocks of
#: 2 MiB and more to huge pages and asks for transparent huge pages
#: (``madvise``), 512x fewer page faults for the same zero-filling.
#: ``jemalloc`` / ``tcmalloc``: another allocator preloaded in place of
#: glibc's (``LD_PRELOAD``, the library found as ``ctypes.util.find_library``
#: finds it), with its default settings.
ALLOCATORS: Dict[str, Dict[str, str]] = {
    'default': {},
    'glibc-keep': {
        'MALLOC_MMAP_THRESHOLD_': _NEVER,
        'MALLOC_TRIM_THRESHOLD_': _NEVER
    },
    'thp': {
        'THP_MEM_ALLOC_ENABLE': '1'
    },
    'jemalloc': {
        'LD_PRELOAD': 'jemalloc'
    },
    'tcmalloc': {
        'LD_PRELOAD': 'tcmalloc'
    },
}

# The Debian / Ubuntu package of each preloaded library.
_PACKAGES = {'jemalloc': 'libjemalloc2', 'tcmalloc': 'libgoogle-perftools4'}

#: Every variable that some setting sets: what a row records.
ALLOCATOR_VARS = tuple(sorted({k for v in ALLOCATORS.values() for k in v}))


def allocator_env(name: str) -> Tuple[Dict[str, str], Optional[str]]:
    """The environment of allocator setting ``name`` (a preloaded library
    by the file name the dynamic loader finds it under), and why it cannot
    run here.

    Args:
        name (str): A key of :data:`ALLOCATORS`.

    Returns:
        tuple[dict, str | None]: Variables to add to a measurement's
        environment (empty for a preloaded library that is not installed),
        and None or the reason it cannot run (that library missing, with
        the package to install).
    """
    if name not in ALLOCATORS:
        raise ValueError(f'unknown allocator setting {name!r}, choose from '
                         f'{tuple(ALLOCATORS)}')
    env = dict(ALLOCATORS[name])
    if 'LD_PRELOAD' not in env:
        return env, None
    library = env['LD_PRELOAD']
    found = ctypes.util.find_library(library)  # an ldconfig subprocess
    if found is None:
        return {}, (f'lib{library}.so not found (Debian / Ubuntu: apt '
                    f'install {_PACKAGES[library]})')
    return {'LD_PRELOAD': found}, None
