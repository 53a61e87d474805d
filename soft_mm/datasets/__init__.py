# Copyright (c) soft_mm contributors. All rights reserved.
from .digits import Digits

__all__ = ['Digits']
