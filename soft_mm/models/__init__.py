# Copyright (c) soft_mm contributors. All rights reserved.
from . import utils  # noqa: F401  (registers soft-official:// etc. loaders)
from .backbones import *  # noqa: F401,F403
