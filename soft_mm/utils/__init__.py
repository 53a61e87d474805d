# Copyright (c) soft_mm contributors. All rights reserved.
from .checkpoint import register_mmengine_safe_globals

__all__ = ['register_mmengine_safe_globals']
