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
from typing import Dict, Optional

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


def _check_name(name: str) -> None:
    if name not in ALLOCATORS:
        raise ValueError(f'unknown allocator setting {name!r}, choose from '
                         f'{tuple(ALLOCATORS)}')


def allocator_unavailable(name: str) -> Optional[str]:
    """Why allocator setting ``name`` cannot run here (a preloaded library
    that is not installed), or None.

    Args:
        name (str): A key of :data:`ALLOCATORS`.

    Returns:
        str | None: The reason.
    """
    _check_name(name)
    library = ALLOCATORS[name].get('LD_PRELOAD')
    if library is not None and ctypes.util.find_library(library) is None:
        return (f'lib{library}.so not found (Debian / Ubuntu: apt install '
                f'{_PACKAGES[library]})')
    return None


def allocator_env(name: str) -> Dict[str, str]:
    """The environment of allocator setting ``name`` (a preloaded library
    by the file name the dynamic loader finds it under).

    Args:
        name (str): A key of :data:`ALLOCATORS`.

    Returns:
        dict: Variables to add to a measurement's environment; empty for
        a library that is not installed (see :func:`allocator_unavailable`).
    """
    _check_name(name)
    env = dict(ALLOCATORS[name])
    if 'LD_PRELOAD' in env:
        library = ctypes.util.find_library(env['LD_PRELOAD'])
        return {} if library is None else {'LD_PRELOAD': library}
    return env
