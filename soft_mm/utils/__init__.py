# Copyright (c) soft_mm contributors. All rights reserved.
"""Helpers; import the submodules (``soft_mm.utils.checkpoint`` needs
mmengine, ``soft_mm.utils.benchmark`` only torch)."""
