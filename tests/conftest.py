# Copyright (c) soft_mm contributors. All rights reserved.
import pytest

try:
    from mmengine.utils import ManagerMixin
except ModuleNotFoundError:  # tools/gpu/check.sh: tests/test_ops, torch only
    ManagerMixin = None


def _manager_classes() -> list:
    """``ManagerMixin`` and every subclass imported so far."""
    if ManagerMixin is None:
        return []
    classes, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    return classes


@pytest.fixture(autouse=True)
def isolate_mmengine_globals():
    """Undo the process-wide instances a test's Runner leaves behind.

    mmengine keeps ``DefaultScope``, ``Visualizer``, ``MMLogger`` and
    ``MessageHub`` instances by name for the whole process. Without this, a
    later test's registry builds look in the scope an mmseg Runner set, and a
    second Runner built from an mmdet / mmseg config (whose visualizer has
    the fixed name ``'visualizer'``) reuses the first one's visualizer, which
    writes into the first test's work dir -- deleted by then when that test
    passed (pytest.ini keeps only failed tests' tmp dirs).
    """
    saved = {cls: cls._instance_dict.copy() for cls in _manager_classes()
             if '_instance_dict' in vars(cls)}
    yield
    for cls in _manager_classes():
        if '_instance_dict' not in vars(cls):
            continue
        cls._instance_dict.clear()
        cls._instance_dict.update(saved.get(cls, {}))
