# Copyright (c) soft_mm contributors. All rights reserved.
"""The models of ``tools/analysis_tools/benchmark.py`` and one measured
configuration (run in a fresh process by
:func:`soft_mm.apis.benchmark.run_isolated`)."""
import torch
from mmpretrain.registry import MODELS

from soft_mm.ops import resolve_impl
from .benchmark import make_step, measure
from .deploy import TensorForward

#: Default models of the classifier comparison and of the backbone mode.
CLS_MODELS = ('soft-tiny', 'deit-tiny', 'deit-small', 'pcpvt-s', 'swin-t',
              'pvt-v2-b1')
BACKBONE_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'pcpvt-s', 'pvt-v2-b1')
ALL_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'deit-tiny', 'deit-small',
              'pcpvt-s', 'swin-t', 'pvt-v2-b1')
#: What the ratios are relative to.
BASELINE = 'soft-tiny'


def _classifier(backbone: dict, in_channels: int, neck: bool):
    cfg = dict(
        type='ImageClassifier',
        backbone=backbone,
        neck=dict(type='GlobalAveragePooling') if neck else None,
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=in_channels))
    return MODELS.build(cfg)


def build_bench_model(name: str, mode: str, size):
    """The benchmarked module (images in, tensor or tuple out).

    Args:
        name (str): One of :data:`ALL_MODELS`.
        mode (str): ``'cls'`` (classifier, logits) or ``'backbone'`` (the
            4 feature maps).
        size (tuple): Input (H, W); position tables of ViTs are built for it.
    """
    if name == 'pvt-v2-b1':
        try:
            import timm
        except ImportError:
            raise RuntimeError('skipped: timm is not installed') from None
        return timm.create_model(
            'pvt_v2_b1', pretrained=False, features_only=mode == 'backbone')
    if name.startswith('soft-tiny'):
        backbone = dict(type='SOFT', arch='tiny', drop_path_rate=0.)
        if name == 'soft-tiny-grid7':
            backbone['landmark_grid'] = 7
        if mode == 'backbone':
            backbone.update(out_indices=(0, 1, 2, 3), out_type='featmap')
        channels, neck = 512, False
    elif name.startswith('deit'):
        if mode == 'backbone':
            raise RuntimeError('skipped: DeiT has no feature pyramid')
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
    return TensorForward(_classifier(backbone, channels, neck))


def bench_config(name, mode, size, batch, pass_, precision, compile_,
                 device, iters, warmup, threads):
    """One configuration (runs in a child process): build, time, measure."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_bench_model(name, mode, size).to(device)
    model.train(pass_ == 'train')
    params = sum(p.numel() for p in model.parameters())
    note = ''
    impls = {getattr(m, 'attn_impl', None) for m in model.modules()} - {None}
    if impls:
        note = 'soft op: ' + resolve_impl(impls.pop(),
                                          torch.device(device).type)
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


__all__ = [
    'build_bench_model', 'bench_config', 'CLS_MODELS', 'BACKBONE_MODELS',
    'ALL_MODELS', 'BASELINE'
]
