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
from typing import Dict

# 10^12 bytes: above any block a step allocates, so glibc keeps all of them
# in its heap and reuses them (and never trims the heap back).
_NEVER = '1000000000000'

#: Name -> environment. ``default``: the allocator as a user gets it.
#: ``glibc-keep``: glibc keeps freed memory for reuse (no mmap per large
#: block, no trimming). ``thp``: PyTorch's CPU allocator aligns blocks of
#: 2 MiB and more to huge pages and asks for transparent huge pages
#: (``madvise``), 512x fewer page faults for the same zero-filling.
ALLOCATORS: Dict[str, Dict[str, str]] = {
    'default': {},
    'glibc-keep': {
        'MALLOC_MMAP_THRESHOLD_': _NEVER,
        'MALLOC_TRIM_THRESHOLD_': _NEVER
    },
    'thp': {
        'THP_MEM_ALLOC_ENABLE': '1'
    },
}

#: Every variable that some setting sets: what a row records.
ALLOCATOR_VARS = tuple(sorted({k for v in ALLOCATORS.values() for k in v}))


def allocator_env(name: str) -> Dict[str, str]:
    """The environment of allocator setting ``name``.

    Args:
        name (str): A key of :data:`ALLOCATORS`.

    Returns:
        dict: Variables to add to a measurement's environment.
    """
    if name not in ALLOCATORS:
        raise ValueError(f'unknown allocator setting {name!r}, choose from '
                         f'{tuple(ALLOCATORS)}')
    return dict(ALLOCATORS[name])
