# Copyright (c) soft_mm contributors. All rights reserved.
from .soft import SOFT

__all__ = ['SOFT']
