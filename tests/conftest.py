# Copyright (c) soft_mm contributors. All rights reserved.
import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def isolate_default_scope():
    """Undo the default scope a test's Runner sets (mmdet, mmseg, ...).

    mmengine keeps the latest ``DefaultScope`` process-wide, so after an mmseg
    Runner test every later registry build would look in mmseg's registries.
    """
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
