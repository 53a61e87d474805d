# Copyright (c) soft_mm contributors. All rights reserved.
from .reference import (gaussian_kernel, newton_inverse, newton_iterate,
                        soft_attention_reference)
from .soft_attention import IMPLS, soft_attention
from .ext import ext_available, ext_device_types

__all__ = [
    'gaussian_kernel', 'newton_inverse', 'newton_iterate', 'soft_attention',
    'soft_attention_reference', 'IMPLS', 'ext_available', 'ext_device_types'
]
