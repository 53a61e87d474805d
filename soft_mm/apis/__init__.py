# Copyright (c) soft_mm contributors. All rights reserved.
"""What users call (and soft_mm's tools are built from); import the
submodule you need:

- :mod:`~soft_mm.apis.inference`: :func:`build_classifier`, an
  evaluation-ready classifier from a config with its weights loaded
  strictly; :func:`read_image`, :func:`build_inferencer`;
- :mod:`~soft_mm.apis.attention_maps`: what SOFT attention gives one query
  position, per stage and head, and its picture;
- :mod:`~soft_mm.apis.deploy`: export helpers (tensor-in/tensor-out
  wrapper, the exported-vs-PyTorch check, the Newton inverse as plain ops);
- :mod:`~soft_mm.apis.complexity`: FLOP handles for SOFT's attention;
- :mod:`~soft_mm.apis.model_index`: soft_mm's models in mmpretrain's hub
  (``mmpretrain.get_model('soft-tiny_...')`` after ``import soft_mm``).

The plumbing of the train and test tools lives in :mod:`soft_mm.runner`,
the benchmarks in :mod:`soft_mm.benchmark`.
"""
