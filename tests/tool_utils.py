# Copyright (c) soft_mm contributors. All rights reserved.
"""Helpers shared by the tests: paths, and running the scripts of tools/
and demo/ in-process."""
import importlib.util
import json
import os
import os.path as osp
import re
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIGITS_CFG = osp.join(ROOT, 'configs', 'soft', 'soft-tiny_1xb64_digits.py')
TINY_CFG = osp.join(ROOT, 'configs', '_base_', 'models', 'soft',
                    'soft-tiny.py')
FINETUNE_RECIPE = osp.join(ROOT, 'configs', 'soft',
                           'soft-tiny_ft-1xb32_custom.py')


def load_script(relpath, register=False):
    """Import a script of the repository (e.g. ``tools/x/y.py``) as a module.

    In-process: a fresh interpreter per call costs ~10 s of imports on a
    loaded 2-core box. ``register`` puts it in ``sys.modules`` under its
    file name, for scripts whose child processes re-import it by name.
    """
    name = osp.splitext(osp.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name,
                                                  osp.join(ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def edit_recipe(**values):
    """The fine-tuning recipe's text with its ``EDIT`` lines
    (``name = ...``) set to ``values``, as a user would edit a copy."""
    text = open(FINETUNE_RECIPE).read()
    for name, value in values.items():
        text, n = re.subn(rf'^{name} = .*$', f'{name} = {value!r}', text,
                          count=1, flags=re.M)
        assert n == 1, f'the recipe has no line `{name} = ...`'
    return text


def run_main(module, capsys, *args):
    """``module.main(args)``; returns (exit code, stdout, stderr)."""
    code = module.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def read_scalars(work_dir):
    """The records of every run's ``vis_data/scalars.json``, runs in order."""
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isdir(osp.join(work_dir, d)) and d[:8].isdigit())
    records = []
    for run in runs:
        path = osp.join(work_dir, run, 'vis_data', 'scalars.json')
        if osp.exists(path):
            with open(path) as f:
                records += [json.loads(line) for line in f]
    return records
