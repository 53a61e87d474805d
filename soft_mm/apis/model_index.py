# Copyright (c) soft_mm contributors. All rights reserved.
"""Make soft_mm's models known to mmpretrain's model hub.

After ``import soft_mm``, mmpretrain's own API finds them by name::

    import soft_mm
    from mmpretrain import (get_model, list_models,
                            ImageClassificationInferencer)

    list_models('soft*')
    model = get_model('soft-tiny_3rdparty_8xb128-official_in1k',
                      pretrained='soft-tiny.pth')

The names, configs and reported results come from ``model-index.yml`` (and
``configs/soft/metafile.yml``), the same files ``mim`` reads. soft_mm ships
no weights, so ``pretrained`` must be a local file (or ``False``).
"""
import os.path as osp
from typing import Optional

# realpath: the package may be reached through a link (tools/setup.sh).
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.realpath(__file__)))


def find_model_index() -> Optional[str]:
    """Path of the ``model-index.yml`` that belongs to this soft_mm.

    A source checkout (editable install, ``PYTHONPATH``) uses the one next
    to ``configs/`` at the repository root: ``soft_mm/.mim`` there may be a
    stale copy from an earlier build. An installed wheel uses
    ``soft_mm/.mim/model-index.yml``.

    Returns:
        str | None: The file, or None when neither exists.
    """
    roots = [osp.join(_PACKAGE_DIR, '.mim')]
    checkout = osp.dirname(_PACKAGE_DIR)
    if osp.isfile(osp.join(checkout, 'setup.py')):
        roots.insert(0, checkout)
    for root in roots:
        path = osp.join(root, 'model-index.yml')
        if osp.isfile(path) and osp.isdir(osp.join(root, 'configs')):
            return path
    return None


def register_model_index() -> list:
    """Register soft_mm's models in ``mmpretrain.apis.ModelHub``.

    Idempotent: when the hub knows any of the names already, nothing is
    registered (mmpretrain raises on a second registration of a name).

    Returns:
        list[str]: The names registered by this call (empty when there is
        no model index or they were registered before).
    """
    path = find_model_index()
    if path is None:
        return []
    from mmpretrain.apis import ModelHub
    from modelindex.load_model_index import load

    names = [model.name.lower() for model in load(path).models]
    if any(ModelHub.has(name) for name in names):
        return []
    # Config paths in the metafile are relative to the folder holding
    # model-index.yml, as in mmpretrain's own .mim layout.
    ModelHub.register_model_index(path, config_prefix=osp.dirname(path))
    return names
