# Copyright (c) soft_mm contributors. All rights reserved.
"""The SOFT attention op (needs torch alone).

- :func:`soft_attention`, :func:`gaussian_kernel`, :func:`newton_inverse`:
  the public functions (``attention.py``); they check their arguments and
  run the backend :func:`select_backend` picks (``dispatch.py``);
- backends (``backend.py``: the interface): ``reference.py`` (pure
  PyTorch, the oracle every kernel is tested against), ``ext.py`` (the
  compiled extension ``soft_mm._ext``, sources in ``csrc/``) and
  ``triton/``;
- :func:`depthwise_conv2d_nhwc`: the local convolution of SOFT attention.
"""
from . import reference
from .attention import gaussian_kernel, newton_inverse, soft_attention
from .backend import Backend
from .checks import check_attention_inputs
from .dispatch import (DEVICE_IMPLS, IMPLS, get_backend, impl_unusable_reason,
                       parse_impl, resolve_impl, select_backend,
                       triton_available, triton_device_types)
from .ext import ext_available, ext_device_types
from .local_conv import depthwise_conv2d_nhwc
from .reference import (newton_iterate, soft_attention_reference,
                        soft_attention_rows)

__all__ = [
    'soft_attention', 'gaussian_kernel', 'newton_inverse', 'Backend',
    'IMPLS', 'DEVICE_IMPLS', 'get_backend', 'select_backend', 'resolve_impl',
    'parse_impl', 'impl_unusable_reason', 'check_attention_inputs',
    'ext_available', 'ext_device_types', 'triton_available',
    'triton_device_types', 'reference', 'soft_attention_reference',
    'soft_attention_rows',
    'newton_iterate', 'depthwise_conv2d_nhwc'
]
