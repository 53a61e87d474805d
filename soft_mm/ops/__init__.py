# Copyright (c) soft_mm contributors. All rights reserved.
from . import reference
from .attention import IMPLS, resolve_impl, soft_attention
from .checks import check_attention_inputs
from .ext import ext_available, ext_device_types
from .local_conv import depthwise_conv2d_nhwc
from .reference import (gaussian_kernel, newton_inverse, newton_iterate,
                        soft_attention_reference)
from .triton import triton_available, triton_device_types

__all__ = [
    'gaussian_kernel', 'newton_inverse', 'newton_iterate', 'soft_attention',
    'soft_attention_reference', 'IMPLS', 'resolve_impl',
    'check_attention_inputs', 'ext_available', 'ext_device_types',
    'triton_available', 'triton_device_types', 'reference',
    'depthwise_conv2d_nhwc'
]
