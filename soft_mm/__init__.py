# Copyright (c) soft_mm contributors. All rights reserved.
"""soft_mm: SOFT (Softmax-free Transformer) for OpenMMLab 2.x.

Importing it registers the ``SOFT`` backbone and soft_mm's datasets in
mmpretrain's registries and soft_mm's models in mmpretrain's model hub
(``mmpretrain.get_model('soft-tiny_3rdparty_8xb128-official_in1k')``, see
:mod:`soft_mm.apis.model_index`), registers the ``soft-official://`` and
``soft-mindspore://`` checkpoint schemes with mmengine, makes mmengine's
local checkpoint writes atomic (see :mod:`soft_mm.checkpoint.atomic`), and
lets ``torch.load(weights_only=True)`` read the few plain-data types that
mmengine checkpoints hold (see :mod:`soft_mm.checkpoint.io`).

Without mmengine / mmpretrain installed, only the attention op
(:mod:`soft_mm.ops`, which needs nothing but torch) is usable: that is how
``tools/gpu/check.sh`` tests the kernels on a bare CUDA machine.
``OPENMMLAB_MISSING`` then names the missing package.
"""
from .version import __version__, version_info

OPENMMLAB_MISSING = None
try:
    import mmengine  # noqa: F401
    import mmpretrain  # noqa: F401
except ModuleNotFoundError as e:
    # Only an absent toolbox; a toolbox that is there but broken (one of
    # its own imports fails) raises as usual.
    if e.name not in ('mmengine', 'mmpretrain', 'mmcv'):
        raise
    OPENMMLAB_MISSING = e.name
    if e.name != 'mmengine':
        # mmengine without mmpretrain: a config's `custom_imports` would
        # import soft_mm and then not find `SOFT`; say why here.
        import warnings
        warnings.warn(
            f'soft_mm: {e.name} is not installed, so the SOFT backbone, '
            'datasets and hooks are not registered; only soft_mm.ops is '
            'usable. Install the OpenMMLab stack with tools/setup.sh.')
else:
    from . import datasets, engine, models  # noqa: F401
    from .apis.model_index import register_model_index
    from .checkpoint import (register_atomic_saves,
                             register_checkpoint_schemes,
                             register_pretrained_loader, register_safe_globals)
    register_safe_globals()
    register_checkpoint_schemes()
    register_atomic_saves()
    register_pretrained_loader()
    register_model_index()

__all__ = ['__version__', 'version_info', 'OPENMMLAB_MISSING']
