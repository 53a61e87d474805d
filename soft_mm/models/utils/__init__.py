# Copyright (c) soft_mm contributors. All rights reserved.
"""Checkpoint converters, safe loading and complexity counting for SOFT.

Importing this package registers the ``soft-official://`` and
``soft-mindspore://`` checkpoint schemes with mmengine.
"""
from .checkpoint_io import (CheckpointError, load_model_weights,
                            safe_torch_load)
from .checkpoint_schemes import (load_with_scheme,
                                 register_checkpoint_schemes)
from .mindspore_ckpt import read_mindspore_checkpoint
from .mindspore_converter import (convert_mindspore_tensors,
                                  load_mindspore_checkpoint)
from .official_converter import (config_hint, convert_official_state_dict,
                                 infer_official_arch,
                                 load_official_checkpoint)

register_checkpoint_schemes()

__all__ = [
    'CheckpointError', 'load_model_weights', 'safe_torch_load',
    'load_with_scheme', 'register_checkpoint_schemes',
    'read_mindspore_checkpoint', 'convert_mindspore_tensors',
    'load_mindspore_checkpoint', 'config_hint', 'convert_official_state_dict',
    'infer_official_arch', 'load_official_checkpoint'
]
