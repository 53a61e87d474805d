# Copyright (c) soft_mm contributors. All rights reserved.
"""The models of ``tools/analysis_tools/benchmark.py`` and one measurement.

Every measurement runs in its own ``python`` process (:func:`child_command`
builds its command line, :func:`child_main` is what runs there), so that
its time, peak memory and imports are its own. The child imports ``soft_mm``
from the checkout the measurement names (``soft_root``): the current tree,
or an older one for the ``*-before`` models. This file is therefore loaded
in the child by its path, not as ``soft_mm.apis.benchmark_models`` (that
would import the current ``soft_mm``): it needs only torch at import time,
loads the torch-only timing helpers of ``benchmark.py`` next to it the same
way, and imports mmpretrain and soft_mm only when a model needs them.
"""
import importlib
import importlib.util
import json
import math
import os
import os.path as osp
import sys
import traceback

import torch

try:
    from .benchmark import make_step, measure
except ImportError:  # loaded by path in a measurement's process
    _spec = importlib.util.spec_from_file_location(
        '_soft_bench_timing',
        osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark.py'))
    _timing = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_timing)
    make_step, measure = _timing.make_step, _timing.measure

#: Default models of the classifier comparison and of the backbone mode
#: (``--sizes`` given; without it the tool runs :data:`PRESET`).
CLS_MODELS = ('soft-tiny', 'deit-tiny', 'deit-small', 'pcpvt-s', 'swin-t',
              'pvt-v2-b1')
BACKBONE_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'pcpvt-s', 'pvt-v2-b1')
#: SOFT-tiny built from the checkout given by ``--before-root``.
BEFORE_MODELS = ('soft-tiny-before', 'soft-tiny-grid7-before')
#: A few convolutions, torch only: for testing the protocol quickly.
TEST_MODELS = ('toy', 'toy-wide')
ALL_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'deit-tiny', 'deit-small',
              'pcpvt-s', 'swin-t', 'pvt-v2-b1') + BEFORE_MODELS + TEST_MODELS
#: What the ratios are relative to (the first of these in a table).
BASELINE = 'soft-tiny'

#: The table of GitHub issue 13: (pass, size, batch, models). SOFT at
#: 1024x1024 with the official landmarks (m ~ 1 000 per head, Newton work
#: ~ m^3) is not in it: bounded landmarks (``landmark_grid=7``) only.
PRESET = (
    ('train', (224, 224), 8,
     ('soft-tiny', 'soft-tiny-before', 'soft-tiny-grid7', 'pvt-v2-b1',
      'deit-tiny', 'pcpvt-s')),
    ('infer', (224, 224), 8,
     ('soft-tiny', 'soft-tiny-before', 'soft-tiny-grid7', 'pvt-v2-b1',
      'deit-tiny', 'pcpvt-s')),
    ('train', (1024, 1024), 1,
     ('soft-tiny-grid7', 'soft-tiny-grid7-before', 'pvt-v2-b1', 'deit-tiny')),
)

#: Marks the child's result line on its stdout.
RESULT_TAG = '@@soft-bench-result@@'


def uses_soft(name: str) -> bool:
    return name.startswith('soft-tiny')


def static_skip(name: str, mode: str):
    """Why ``name`` cannot run in ``mode`` here, known without starting a
    process (None if it can)."""
    if name == 'pvt-v2-b1' and importlib.util.find_spec('timm') is None:
        return 'timm not installed'
    if name.startswith('deit') and mode == 'backbone':
        return 'DeiT has no feature pyramid'
    return None


class _Logits(torch.nn.Module):
    """``model(x, mode='tensor')`` as a plain module (images in, logits out),
    as ``soft_mm.apis.deploy.TensorForward``; defined here because older
    checkouts lack that module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x, mode='tensor')
        if isinstance(out, (tuple, list)):
            out = out[-1]
        return out


class _Toy(torch.nn.Module):

    def __init__(self, width):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, stride=2, padding=1), torch.nn.GELU(),
            torch.nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.head = torch.nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def build_bench_model(name: str, mode: str, size):
    """The benchmarked module (images in, tensor or tuple out).

    Args:
        name (str): One of :data:`ALL_MODELS`; ``*-before`` builds from
            whichever ``soft_mm`` this process imports.
        mode (str): ``'cls'`` (classifier, logits) or ``'backbone'`` (the
            4 feature maps).
        size (tuple): Input (H, W); position tables of ViTs are built for it.
    """
    if name in TEST_MODELS:
        return _Toy(8 if name == 'toy' else 32)
    reason = static_skip(name, mode)
    if reason:
        raise RuntimeError(f'skipped: {reason}')
    if name == 'pvt-v2-b1':
        import timm
        return timm.create_model(
            'pvt_v2_b1', pretrained=False, features_only=mode == 'backbone')
    from mmpretrain.registry import MODELS
    if uses_soft(name):
        import soft_mm  # noqa: F401  registers SOFT
        backbone = dict(type='SOFT', arch='tiny', drop_path_rate=0.)
        if 'grid7' in name:
            backbone['landmark_grid'] = 7
        if mode == 'backbone':
            backbone.update(out_indices=(0, 1, 2, 3), out_type='featmap')
        channels, neck = 512, False
    elif name.startswith('deit'):
        backbone = dict(type='VisionTransformer', arch=name, img_size=size,
                        patch_size=16, drop_path_rate=0.)
        channels, neck = (192 if name == 'deit-tiny' else 384), False
    elif name == 'pcpvt-s':
        backbone = dict(type='PCPVT', arch='small', drop_path_rate=0.,
                        out_indices=(0, 1, 2, 3) if mode == 'backbone' else
                        (3, ))
        channels, neck = 512, True
    elif name == 'swin-t':
        backbone = dict(type='SwinTransformer', arch='tiny', img_size=size,
                        drop_path_rate=0., pad_small_map=True,
                        out_indices=(0, 1, 2, 3) if mode == 'backbone' else
                        (3, ))
        channels, neck = 768, True
    else:
        raise ValueError(f'unknown model {name!r}')
    if mode == 'backbone':
        return MODELS.build(backbone)
    return _Logits(
        MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=backbone,
                neck=dict(type='GlobalAveragePooling') if neck else None,
                head=dict(type='LinearClsHead', num_classes=1000,
                          in_channels=channels))))


def soft_op_note(model, device_type: str) -> str:
    """What SOFT's ``attn_impl`` resolves to (``''`` for other models), in
    whichever soft_mm is imported (the resolver moved between versions)."""
    impls = {getattr(m, 'attn_impl', None) for m in model.modules()} - {None}
    if not impls:
        return ''
    impl = impls.pop()
    try:
        from soft_mm.ops import resolve_impl
    except ImportError:  # older checkouts
        from soft_mm.ops.soft_attention import resolve_impl
    try:
        resolved = resolve_impl(impl, device_type, torch.float32)
    except TypeError:  # older signature: (impl, device_type)
        resolved = resolve_impl(impl, device_type)
    return f'soft op: {impl} -> {resolved}'


def bench_config(name, mode, size, batch, pass_, precision, compile_,
                 device, iters, warmup, threads):
    """One configuration: build, time, measure (call it in a fresh
    process). Returns :func:`measure`'s dict plus ``params`` and ``note``."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_bench_model(name, mode, size).to(device)
    model.train(pass_ == 'train')
    params = sum(p.numel() for p in model.parameters())
    note = soft_op_note(model, torch.device(device).type)
    if compile_ == 'on':
        model = torch.compile(model)
    x = torch.randn(batch, 3, *size, device=device)
    amp_dtype = None
    if precision == 'amp':
        amp_dtype = (torch.float16 if torch.device(device).type == 'cuda'
                     else torch.bfloat16)
    step = make_step(model, x, pass_ == 'train', amp_dtype)
    result = measure(step, device, iters=iters, warmup=warmup)
    result.update(params=params, note=note)
    return result


# ------------------------------------------------- one measurement's process

_CHILD_CODE = '''\
import importlib.util, json, sys
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg['soft_root'])
spec = importlib.util.spec_from_file_location('_soft_bench_models',
                                              cfg['models_file'])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
sys.exit(mod.child_main(cfg))
'''


def child_command(cfg: dict) -> list:
    """The command line of one measurement's process.

    Args:
        cfg (dict): :func:`bench_config`'s keyword arguments plus
            ``soft_root`` (the directory holding the ``soft_mm`` package to
            import). JSON-serialisable.
    """
    cfg = dict(cfg, models_file=osp.abspath(__file__))
    return [sys.executable, '-c', _CHILD_CODE, json.dumps(cfg)]


def child_env(threads, base=None) -> dict:
    """The environment of a measurement's process: ``threads`` for every
    thread pool, and one compile worker for ``torch.compile`` (its workers
    would otherwise add load while the measurement is being prepared)."""
    env = dict(os.environ if base is None else base)
    if threads:
        for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS',
                    'OPENBLAS_NUM_THREADS'):
            env[var] = str(threads)
    env.setdefault('TORCHINDUCTOR_COMPILE_THREADS', '1')
    return env


def _emit(status, **fields):
    print(RESULT_TAG + json.dumps(dict(status=status, **fields)), flush=True)


def child_main(cfg: dict) -> int:
    """Run in a measurement's process: import soft_mm from
    ``cfg['soft_root']`` when the model needs it (and check that it did),
    then :func:`bench_config`; prints one tagged JSON line."""
    cfg = dict(cfg)
    root = osp.realpath(cfg.pop('soft_root'))
    cfg.pop('models_file', None)
    cfg['size'] = tuple(cfg['size'])
    source = ''
    try:
        if uses_soft(cfg['name']):
            import soft_mm
            where = osp.realpath(osp.dirname(osp.dirname(soft_mm.__file__)))
            if where != root:
                _emit('error', note=f'imported soft_mm from {where}, not '
                      f'from {root}')
                return 0
            source = f'soft_mm from {root}'
        result = bench_config(**cfg)
    except (torch.OutOfMemoryError, MemoryError):
        _emit('oom', note='out of memory')
        return 0
    except Exception as e:
        text = f'{type(e).__name__}: {e}'.splitlines()[0]
        if text.startswith('RuntimeError: skipped: '):
            _emit('skipped', note=text.split('skipped: ', 1)[1])
        else:
            _emit('error', note=text + ' | ' +
                  traceback.format_exc().splitlines()[-1])
        return 0
    peak = result['peak_bytes']
    _emit('ok', times_s=result['times_s'], params=result['params'],
          peak_bytes=None if math.isnan(peak) else peak,
          note=result['note'], source=source,
          threads=torch.get_num_threads())
    return 0


def parse_child_output(stdout: str):
    """The child's result dict, or None if it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return None


__all__ = [
    'build_bench_model', 'bench_config', 'child_command', 'child_env',
    'child_main', 'parse_child_output', 'soft_op_note', 'static_skip',
    'CLS_MODELS', 'BACKBONE_MODELS', 'BEFORE_MODELS', 'TEST_MODELS',
    'ALL_MODELS', 'BASELINE', 'PRESET'
]
