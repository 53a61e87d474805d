# Copyright (c) soft_mm contributors. All rights reserved.
"""soft_mm: SOFT (Softmax-free Transformer) for OpenMMLab 2.x.

Importing it registers the ``SOFT`` backbone and soft_mm's datasets in
mmpretrain's registries and soft_mm's models in mmpretrain's model hub
(``mmpretrain.get_model('soft-tiny_8xb128_in1k')``, see
:mod:`soft_mm.utils.model_index`), and lets ``torch.load(weights_only=True)``
read the few mmengine types that mmengine checkpoints hold (see
:mod:`soft_mm.utils.checkpoint`).
"""
from .utils.checkpoint import register_mmengine_safe_globals
from .version import __version__, version_info

register_mmengine_safe_globals()

from . import datasets, engine, models  # noqa: E402,F401
from .utils.model_index import register_model_index  # noqa: E402

register_model_index()

__all__ = ['__version__', 'version_info']
