# Copyright (c) soft_mm contributors. All rights reserved.
"""One measurement, in the process it runs in: build the subject, run the
one timing loop, report time and peak memory.

The benchmark runs every measurement in a fresh interpreter::

    python -P soft_mm/benchmark/measure.py '{"subject": {...}, ...}'

(``-P``: nothing but ``PYTHONPATH`` and site-packages on ``sys.path``), so
that its imports, allocator and peak-RSS mark are its own, and so that the
``soft_mm`` it imports is the one ``PYTHONPATH`` names: this tree, or an
older checkout to compare with. This file therefore imports nothing of
soft_mm at module level (torch only) and is run by its path; the subject
imports what it needs. It prints one line, ``RESULT_TAG`` + JSON.

Subjects (the ``subject`` dict, built by :mod:`soft_mm.benchmark.subjects`):

- ``{'kind': 'model', 'registry': CFG}``: ``mmpretrain.registry.MODELS``
  builds ``CFG`` (after importing ``imports``); ``tensor_mode`` calls it
  as ``model(x, mode='tensor')`` (a classifier's logits);
- ``{'kind': 'model', 'timm': NAME, 'features_only': bool}``;
- ``{'kind': 'model', 'toy': WIDTH}``: two convolutions (tests);
- ``{'kind': 'attention', 'shape': [B, h, n, m, d], 'impl': ...}``: the
  SOFT attention op (``'compile'``: the reference under torch.compile);
- ``{'kind': 'newton', 'shape': [N, m, d], 'impl': ...}``: the Newton
  iteration alone on ``N`` landmark kernels;
- ``{'kind': 'dense', 'config': PATH, 'task': 'det' | 'seg', 'backbone':
  CFG | None, 'channels': [...], 'masks': bool}``: an mmdet detector or
  mmseg segmentor from a config file with its backbone swapped; training
  is ``mode='loss'`` + backward on random ground truth, inference
  ``mode='tensor'`` (the raw head outputs, no NMS); ``params`` counts the
  backbone.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the level
at entry; on CPU the peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``) above the resident set at entry (``nan`` where
Linux's ``/proc`` is missing).
"""
import gc
import json
import math
import os
import sys
import time
import traceback
from contextlib import nullcontext
from typing import Callable, Dict, Optional

import torch

#: Marks the result line on the child's stdout.
RESULT_TAG = '@@soft-bench-result@@'


def _status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_cpu_peak() -> bool:
    """Reset this process's peak-RSS mark; False if the OS cannot."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager measuring peak memory above the level at entry.

    Args:
        device (torch.device | str): Where the work runs.

    Attributes:
        peak_bytes (float): Peak extra bytes (``nan`` if unmeasurable).
        process_peak_bytes (float): CPU: the whole process's peak resident
            set in the window, the baseline included (``nan`` on CUDA or
            if unmeasurable).
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_bytes = math.nan
        self.process_peak_bytes = math.nan

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            # Collect first: a cycle freed by a gc pass inside the window
            # would lower RSS and hide the allocation being measured.
            gc.collect()
            self._ok = reset_cpu_peak()
            self._base = _status_kib('VmRSS')
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_bytes = float(
                torch.cuda.max_memory_allocated(self.device) - self._base)
        elif self._ok and self._base is not None:
            peak = _status_kib('VmHWM')
            if peak is not None:
                self.peak_bytes = float(max(peak - self._base, 0) * 1024)
                self.process_peak_bytes = float(peak * 1024)
        return False


def synchronize(device) -> None:
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], device, iters: int,
               warmup: int) -> Dict[str, object]:
    """The timing loop: ``warmup`` untimed calls of ``step``, then
    ``iters`` timed ones.

    Peak memory covers every call, warm-up included (memory the allocator
    keeps after the first call would otherwise hide the activations of
    later ones), above the level before the first.

    Returns:
        dict: ``times_s`` (every timed call), ``peak_bytes`` and
        ``process_peak_bytes`` (see :class:`PeakMemory`).
    """
    if iters < 1:
        raise ValueError(f'time_steps: iters must be >= 1, got {iters}')
    with PeakMemory(device) as mem:
        for _ in range(warmup):
            step()
        synchronize(device)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            step()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return dict(times_s=times, peak_bytes=mem.peak_bytes,
                process_peak_bytes=mem.process_peak_bytes)


def _outputs_sum(out):
    if isinstance(out, (tuple, list)):
        return sum(o.float().sum() for o in out)
    return out.float().sum()


def model_step(model: torch.nn.Module, inputs: torch.Tensor, train: bool,
               amp_dtype: Optional[torch.dtype],
               tensor_mode: bool = False) -> Callable[[], None]:
    """One forward (inference) or forward + backward of the outputs' sum
    (training) of ``model`` on ``inputs``.

    Args:
        model (nn.Module): Images in, a tensor or tuple of tensors out.
        inputs (Tensor): The batch.
        train (bool): Run the backward pass as well.
        amp_dtype (torch.dtype, optional): Autocast dtype, None for fp32.
        tensor_mode (bool): Call ``model(inputs, mode='tensor')`` (an
            mmpretrain classifier's logits).
    """
    device_type = inputs.device.type
    kwargs = dict(mode='tensor') if tensor_mode else {}

    def forward():
        out = model(inputs, **kwargs)
        if tensor_mode and isinstance(out, (tuple, list)):
            out = out[-1]
        return out

    def step():
        ctx = (torch.autocast(device_type, dtype=amp_dtype)
               if amp_dtype is not None else nullcontext())
        if train:
            model.zero_grad(set_to_none=True)
            with ctx:
                loss = _outputs_sum(forward())
            loss.backward()
        else:
            with torch.no_grad(), ctx:
                forward()

    return step


class _Toy(torch.nn.Module):
    """Two convolutions and a linear head: a subject for testing the
    protocol in seconds."""

    def __init__(self, width):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, stride=2, padding=1),
            torch.nn.GELU(),
            torch.nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.head = torch.nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def build_model(subject: dict) -> torch.nn.Module:
    """The module of a ``'model'`` subject (see the module docstring)."""
    if 'toy' in subject:
        return _Toy(subject['toy'])
    if 'timm' in subject:
        import timm
        return timm.create_model(
            subject['timm'], pretrained=False,
            features_only=subject.get('features_only', False))
    for name in subject.get('imports', ()):
        __import__(name)
    from mmpretrain.registry import MODELS
    return MODELS.build(subject['registry'])


def soft_op_note(model: torch.nn.Module, device_type: str) -> str:
    """``'soft op: auto -> ext'``: what the SOFT blocks' ``attn_impl``
    resolves to (``''`` for other models)."""
    impls = {getattr(m, 'attn_impl', None) for m in model.modules()} - {None}
    if not impls:
        return ''
    impl = impls.pop()
    try:
        from soft_mm.ops import resolve_impl
        resolved = resolve_impl(impl, device_type, torch.float32)
    except (ImportError, TypeError):  # a checkout that says it otherwise
        return f'soft op: {impl}'
    return f'soft op: {impl} -> {resolved}'


def _amp_dtype(precision: str, device: torch.device):
    if precision != 'amp':
        return None
    return torch.float16 if device.type == 'cuda' else torch.bfloat16


def _measure_model(cfg: dict, device: torch.device) -> dict:
    subject = cfg['subject']
    model = build_model(subject).to(device)
    train = cfg['pass'] == 'train'
    model.train(train)
    params = sum(p.numel() for p in model.parameters())
    note = soft_op_note(model, device.type)
    if cfg.get('compile') in (True, 'on'):
        model = torch.compile(model)
    x = torch.randn(cfg['batch'], 3, cfg['height'], cfg['width'],
                    device=device)
    step = model_step(model, x, train, _amp_dtype(cfg['precision'], device),
                      subject.get('tensor_mode', False))
    result = time_steps(step, device, cfg['iters'], cfg['warmup'])
    return dict(result, params=params, note=note)


def _rel_err(got, want) -> float:
    return ((got.double() - want.double()).abs().max() /
            want.double().abs().max().clamp_min(1e-30)).item()


def _attention_inputs(shape, dtype, device):
    b, h, n, m, d = shape
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(b, h, n, d, generator=gen) * 0.3
    lm = torch.randn(b, h, m, d, generator=gen) * 0.3
    v = torch.randn(b, h, n, d, generator=gen)
    return [t.to(device, dtype) for t in (q, lm, v)]


def _measure_attention(cfg: dict, device: torch.device) -> dict:
    from soft_mm.ops import soft_attention, soft_attention_reference
    subject = cfg['subject']
    dtype = getattr(torch, subject.get('dtype', 'float32'))
    autocast = None if dtype == torch.float32 else dtype
    norm = subject.get('norm', False)
    q, lm, v = _attention_inputs(subject['shape'], dtype, device)

    def attention(q, lm, v):
        return soft_attention(q, lm, v, norm=norm, impl=subject['impl'])

    if subject.get('compile'):
        attention = torch.compile(attention, dynamic=False)
    extra = {}
    if subject['impl'] != 'reference' or subject.get('compile'):
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast,
                                             enabled=autocast is not None):
            got = attention(q, lm, v)
        want = soft_attention_reference(q.double(), lm.double(), v.double(),
                                        norm=norm)
        extra['err'] = _rel_err(got, want)
    backward = cfg['pass'] == 'train'
    for t in (q, lm, v):
        t.requires_grad_(backward)

    def step():
        with torch.autocast(device.type, dtype=autocast,
                            enabled=autocast is not None):
            out = attention(q, lm, v)
        if backward:
            out.float().sum().backward()
            q.grad = lm.grad = v.grad = None

    return dict(time_steps(step, device, cfg['iters'], cfg['warmup']),
                extra=extra)


def _measure_newton(cfg: dict, device: torch.device) -> dict:
    from soft_mm.ops import (gaussian_kernel, get_backend, newton_inverse,
                             newton_iterate)
    from soft_mm.ops.reference import NEWTON_ITERS, NEWTON_RIDGE
    subject = cfg['subject']
    nb, m, d = subject['shape']
    gen = torch.Generator().manual_seed(0)
    lm = (torch.randn(nb, m, d, generator=gen) * 0.3).to(device)
    mat = gaussian_kernel(lm, lm)
    if subject['impl'] == 'reference':  # the op-by-op loop, no autograd

        def step():
            newton_iterate(mat)
    else:

        backend = get_backend(subject['impl'])

        def step():
            # The backend itself: the public op also checks its ridge
            # against mat (a reduction and a host sync) on every call.
            backend.newton_inverse(mat, NEWTON_ITERS, NEWTON_RIDGE)

    extra = {}
    if subject['impl'] != 'reference':
        with torch.no_grad():
            extra['err'] = _rel_err(newton_inverse(mat, impl=subject['impl']),
                                    newton_iterate(mat.double()))
    return dict(time_steps(step, device, cfg['iters'], cfg['warmup']),
                extra=extra)


def build_dense(subject: dict, size) -> torch.nn.Module:
    """The detector / segmentor of a ``'dense'`` subject for ``size``
    ``(H, W)`` inputs: the config file's model with its backbone replaced
    (``backbone``, None keeps the config's, without its pretrained weights)
    and the layers reading the backbone's channels (``channels``) set to
    match."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(subject['config'])
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model
    if subject.get('backbone') is not None:
        model_cfg.backbone = subject['backbone']
    else:
        model_cfg.backbone.pop('init_cfg', None)
    model_cfg.backbone.update(subject.get('backbone_update', {}))
    channels = subject['channels']
    if model_cfg.get('neck') is not None:
        model_cfg.neck.in_channels = channels
    if model_cfg.get('decode_head') is not None:
        model_cfg.decode_head.in_channels = channels
    aux = model_cfg.get('auxiliary_head')
    if aux is not None:
        aux.in_channels = channels[aux.in_index]
    if subject['task'] == 'seg':
        model_cfg.data_preprocessor.size = tuple(size)
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    # SyncBN needs a process group: plain BN computes the same here.
    return revert_sync_batchnorm(MODELS.build(model_cfg))


def dense_batch(task: str, height: int, width: int, masks: bool,
                batch: int = 1):
    """``batch`` images with random pixels and a few ground-truth boxes
    (and masks) or a random segmentation map each, as the data loader gives
    them."""
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, height, width),
                                    generator=gen, dtype=torch.uint8))
        samples.append(_dense_sample(task, height, width, masks, gen))
    return dict(inputs=inputs, data_samples=samples)


def _dense_sample(task, height, width, masks, gen):
    meta = dict(img_shape=(height, width), ori_shape=(height, width),
                pad_shape=(height, width), scale_factor=(1.0, 1.0))
    if task == 'seg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, 150, (1, height, width), generator=gen))
        return sample
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    n = 8
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([width, height]) / 2
    wh = (torch.rand(n, 2, generator=gen) * 0.4 + 0.1) * torch.tensor(
        [width, height])
    boxes = torch.cat([xy, (xy + wh).minimum(
        torch.tensor([width - 1., height - 1.]))], 1)
    gt = InstanceData(bboxes=boxes, labels=torch.randint(
        0, 80, (n, ), generator=gen))
    if masks:
        import numpy as np
        from mmdet.structures.mask import BitmapMasks
        bitmap = np.zeros((n, height, width), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            bitmap[i, y1:y2, x1:x2] = 1
        gt.masks = BitmapMasks(bitmap, height, width)
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = gt
    return sample


def _measure_dense(cfg: dict, device: torch.device) -> dict:
    subject = cfg['subject']
    for name in subject.get('imports', ()):
        __import__(name)
    if cfg.get('precision', 'fp32') != 'fp32':
        raise ValueError('dense subjects: fp32 only')
    model = build_dense(subject, (cfg['height'], cfg['width'])).to(device)
    train = cfg['pass'] == 'train'
    model.train(train)
    params = sum(p.numel() for p in model.backbone.parameters())
    data = model.data_preprocessor(
        dense_batch(subject['task'], cfg['height'], cfg['width'],
                    subject.get('masks', False), cfg['batch']), train)

    def step():
        if train:
            model.zero_grad(set_to_none=True)
            loss, _ = model.parse_losses(model(**data, mode='loss'))
            loss.backward()
        else:
            with torch.no_grad():
                model(**data, mode='tensor')

    result = time_steps(step, device, cfg['iters'], cfg['warmup'])
    return dict(result, params=params, note=soft_op_note(model, device.type))


_MEASURES = dict(model=_measure_model, attention=_measure_attention,
                 newton=_measure_newton, dense=_measure_dense)


def measure(cfg: dict) -> dict:
    """One measurement as ``cfg`` describes it.

    Args:
        cfg (dict): ``subject`` (see the module docstring), ``device``,
            ``threads``, ``iters``, ``warmup``, ``pass`` (``'infer'`` or
            ``'train'``), and for models ``height``, ``width``, ``batch``,
            ``precision`` (``'fp32'`` or ``'amp'``), ``compile``
            (``'on'``/``'off'``).

    Returns:
        dict: ``times_s``, ``peak_bytes`` and what the subject adds
        (``params``, ``note``, ``extra``).
    """
    if cfg.get('threads'):
        torch.set_num_threads(cfg['threads'])
    torch.manual_seed(0)
    device = torch.device(cfg['device'])
    return _MEASURES[cfg['subject']['kind']](cfg, device)


def _emit(status: str, **fields) -> None:
    print(RESULT_TAG + json.dumps(dict(status=status, **fields)), flush=True)


def _check_soft_mm_root(root: str) -> Optional[str]:
    """Why the imported soft_mm is not the one under ``root``, or None."""
    import soft_mm
    where = os.path.realpath(os.path.dirname(os.path.dirname(
        soft_mm.__file__)))
    if where != os.path.realpath(root):
        return f'imported soft_mm from {where}, not from {root}'
    return None


def main(argv=None) -> int:
    """Run the measurement of the JSON argument; print one tagged line."""
    cfg = json.loads((argv or sys.argv[1:])[0])
    try:
        if 'soft_mm' in cfg['subject'].get('imports', ()):
            wrong = _check_soft_mm_root(cfg['soft_root'])
            if wrong:
                _emit('error', note=wrong)
                return 0
        result = measure(cfg)
    except (torch.OutOfMemoryError, MemoryError):
        _emit('oom', note='out of memory')
        return 0
    except Exception as e:  # reported; the benchmark goes on
        text = f'{type(e).__name__}: {e}'.splitlines()[0]
        _emit('error', note=text + ' | ' +
              traceback.format_exc().splitlines()[-1])
        return 0
    peak = result.pop('peak_bytes')
    # The variables this process ran with (the allocator's), as it saw
    # them: part of the row. Named by the parent, as this script imports
    # nothing of the checkout it measures.
    seen = ' '.join(f'{k}={os.environ[k]}' for k in cfg.get('record_env', ())
                    if k in os.environ)
    if seen:
        result['note'] = '; '.join(n for n in (result.get('note'), seen) if n)
    _emit('ok', peak_bytes=None if math.isnan(peak) else peak,
          threads=torch.get_num_threads(), **result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
