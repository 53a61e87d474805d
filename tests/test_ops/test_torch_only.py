# Copyright (c) soft_mm contributors. All rights reserved.
"""The op needs torch alone: tools/gpu/check.sh runs tests/test_ops on GPU
machines that have torch but no OpenMMLab package and no network."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_blocked(tmp_path, blocked, program):
    """Run ``program`` in a fresh interpreter in which the top-level
    packages ``blocked`` look absent (a sitecustomize puts a finder that
    refuses them first on ``sys.meta_path``)."""
    (tmp_path / 'sitecustomize.py').write_text(textwrap.dedent(f'''
        import sys


        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {sorted(blocked)!r}:
                    raise ModuleNotFoundError(
                        f'No module named {{name!r}}', name=name)


        sys.meta_path.insert(0, Block())
    '''))
    path = [str(tmp_path), ROOT, os.environ.get('PYTHONPATH', '')]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
    return subprocess.run([sys.executable, '-c', program], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


PROGRAM = textwrap.dedent('''
    import sys
    import torch
    import soft_mm
    from soft_mm.ops import soft_attention
    from soft_mm.ops.reference import soft_attention_reference
    from soft_mm.benchmark import run_benchmark  # benchmark_ops.py's
    from soft_mm.benchmark.subjects import stage_shape
    assert stage_shape(224, 1, 1) == (1, 2, 3136, 49, 32)
    import runpy
    runpy.run_path('tests/conftest.py')  # the tests' own fixtures import

    assert soft_mm.OPENMMLAB_MISSING == 'mmengine', soft_mm.OPENMMLAB_MISSING
    loaded = sorted(m for m in sys.modules
                    if m.split('.')[0] in ('mmengine', 'mmpretrain', 'mmcv'))
    assert not loaded, loaded
    torch.manual_seed(0)
    q, lm, v = (torch.randn(1, 2, n, 8, dtype=torch.float64)
                for n in (30, 5, 30))
    out = soft_attention(q, lm, v, impl='auto')
    torch.testing.assert_close(out, soft_attention_reference(q, lm, v))
    print('torch-only OK')
''')


def test_op_imports_and_runs_without_openmmlab(tmp_path):
    proc = run_blocked(
        tmp_path, ['mmengine', 'mmpretrain', 'mmcv', 'mmdet', 'mmseg'],
        PROGRAM)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'torch-only OK' in proc.stdout


def test_partial_stack_warns(tmp_path):
    """mmengine without mmpretrain: import works (the op) but warns that
    nothing is registered."""
    pytest.importorskip('mmengine')
    proc = run_blocked(
        tmp_path, ['mmpretrain'],
        'import warnings\n'
        'with warnings.catch_warnings(record=True) as w:\n'
        '    warnings.simplefilter("always")\n'
        '    import soft_mm\n'
        'assert soft_mm.OPENMMLAB_MISSING == "mmpretrain"\n'
        'print([str(x.message) for x in w])\n')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'mmpretrain is not installed' in proc.stdout
    assert 'only soft_mm.ops is usable' in proc.stdout


def test_broken_toolbox_is_not_hidden(tmp_path):
    """Only an absent mmengine / mmpretrain / mmcv is tolerated: an
    installed mmpretrain whose own dependency is missing raises."""
    # Only meaningful where mmpretrain is installed (not on the GPU image).
    pytest.importorskip('mmpretrain')
    proc = run_blocked(tmp_path, ['modelindex'], 'import soft_mm')
    assert proc.returncode != 0
    assert "No module named 'modelindex'" in proc.stderr
