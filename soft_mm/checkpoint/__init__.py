# Copyright (c) soft_mm contributors. All rights reserved.
"""Weights I/O: safe loading, the official and MindSpore formats, and the
``soft-official://`` / ``soft-mindspore://`` checkpoint schemes.

:func:`register_safe_globals` and :func:`register_checkpoint_schemes` run
when :mod:`soft_mm` is imported.
"""
from .atomic import (AtomicLocalBackend, atomic_write, atomic_write_bytes,
                     register_atomic_saves)
from .io import (CHECKPOINT_FORMATS, SAFE_GLOBALS, CheckpointError,
                 CheckpointNotFoundError, check_destination,
                 compare_state_dicts, extract_state_dict, load_safetensors,
                 register_safe_globals, safe_torch_load, save_checkpoint_file,
                 save_safetensors, strip_module_prefix)
from .loading import fitting_state_dict, load_model_weights, read_checkpoint
from .mindspore import (convert_mindspore_tensors, load_mindspore_checkpoint,
                        read_mindspore_checkpoint)
from .official import (convert_official_state_dict, infer_official_arch,
                       load_official_checkpoint, select_official_state)
from .pretrained import (load_pretrained_backbone, register_pretrained_loader,
                         resize_position_tables)
from .schemes import (SCHEMES, load_local_checkpoint,
                      register_checkpoint_schemes)

__all__ = [
    'atomic_write', 'atomic_write_bytes', 'AtomicLocalBackend',
    'register_atomic_saves', 'CHECKPOINT_FORMATS', 'SAFE_GLOBALS',
    'CheckpointError', 'CheckpointNotFoundError', 'check_destination',
    'compare_state_dicts', 'extract_state_dict', 'load_safetensors',
    'register_safe_globals', 'safe_torch_load', 'save_checkpoint_file',
    'save_safetensors', 'strip_module_prefix', 'fitting_state_dict',
    'read_checkpoint', 'load_model_weights', 'convert_mindspore_tensors',
    'load_mindspore_checkpoint', 'read_mindspore_checkpoint',
    'convert_official_state_dict', 'infer_official_arch',
    'load_official_checkpoint', 'select_official_state', 'SCHEMES',
    'load_local_checkpoint', 'register_checkpoint_schemes',
    'load_pretrained_backbone', 'register_pretrained_loader',
    'resize_position_tables'
]
