# Copyright (c) soft_mm contributors. All rights reserved.
"""What soft_mm's tools are built from; import the submodule you need:

- :mod:`~soft_mm.apis.inference`: config loading, strict classifier building;
- :mod:`~soft_mm.apis.deploy`: export-tool plumbing;
- :mod:`~soft_mm.apis.complexity`: FLOP handles for SOFT's attention;
- :mod:`~soft_mm.apis.benchmark`: timing and peak memory (torch only);
- :mod:`~soft_mm.apis.benchmark_models`: the models the benchmark compares;
- :mod:`~soft_mm.apis.launch`: device-aware distributed set-up;
- :mod:`~soft_mm.apis.model_index`: soft_mm's models in mmpretrain's hub.

Nothing is imported here: :mod:`~soft_mm.apis.benchmark` must stay usable
where only torch is installed (the op benchmark on a bare GPU machine).
"""
