# Copyright (c) soft_mm contributors. All rights reserved.
"""What the benchmarks measure, as :class:`~soft_mm.benchmark.Case` lists
for the protocol: the models compared with SOFT-tiny (and their default
tables), and the SOFT attention op at SOFT-tiny's stage shapes."""
import importlib.util
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from soft_mm.archs import ARCH_DEFAULTS, ARCH_ZOO
from .allocators import allocator_env
from .protocol import CURRENT_ROOT, Case

#: Default models of the classifier comparison and of the backbone mode.
CLS_MODELS = ('soft-tiny', 'deit-tiny', 'deit-small', 'pcpvt-s', 'swin-t',
              'pvt-v2-b1')
BACKBONE_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'pcpvt-s', 'pvt-v2-b1')
#: SOFT-tiny built from an older checkout (the tool's ``--before-root``).
BEFORE_MODELS = ('soft-tiny-before', 'soft-tiny-grid7-before')
#: A few convolutions, torch only: for testing the protocol quickly.
TEST_MODELS = ('toy', 'toy-wide')
#: What the ratios are relative to (the first model of a table without it).
BASELINE = 'soft-tiny'

#: Dense prediction (``--mode dense``): the detector / segmentor configs
#: whose backbone is swapped, ``(config, 'det' | 'seg', masks)``. UPerNet
#: comes from the SOFT-Norm-small config with the tiny arch (same widths).
DENSE_TASKS = {
    'retinanet': ('configs/mmdet/retinanet_soft-norm-tiny_fpn_1x_coco.py',
                  'det', False),
    'mask-rcnn': ('configs/mmdet/mask-rcnn_soft-norm-tiny_fpn_1x_coco.py',
                  'det', True),
    'upernet': ('configs/mmseg/upernet_soft-norm-small_4xb4-160k_'
                'ade20k-512x512.py', 'seg', False),
}
#: Images per step of a dense task: UPerNet's pooling module normalises
#: 1x1 maps, which batch norm cannot train on a batch of one.
DENSE_BATCH = {'retinanet': 1, 'mask-rcnn': 1, 'upernet': 2}
#: The default dense tables: (task, size). UPerNet at the ADE20K crop, the
#: Cityscapes training crop and the whole Cityscapes image: the two smaller
#: sizes give the curve that predicts the largest (skipped with its
#: prediction where that exceeds the machine).
DENSE_TABLES = (('retinanet', (800, 1333)), ('mask-rcnn', (800, 1333)),
                ('upernet', (512, 512)), ('upernet', (512, 1024)),
                ('upernet', (1024, 2048)))
#: Backbones of the dense comparison: the dense configs' own SOFT-Norm-tiny
#: (``landmark_grid=7``) and the libraries' own PVTv2-b1, Swin-T and
#: ResNet-50 with their usual settings (ResNet: first stage frozen in
#: mmdet, as its configs train it); no stochastic depth anywhere. In
#: ``--mode dense``, ``swin-t`` is mmdet's / mmseg's Swin-T.
DENSE_MODELS = ('soft-norm-tiny', 'pvtv2-b1', 'swin-t', 'resnet-50')
DENSE_BASELINE = 'soft-norm-tiny'
#: Every model name the tools accept.
ALL_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'soft-tiny-grid7-cp',
              'deit-tiny', 'deit-small', 'pcpvt-s', 'swin-t',
              'pvt-v2-b1', 'soft-norm-tiny', 'pvtv2-b1', 'resnet-50'
              ) + BEFORE_MODELS + TEST_MODELS

#: The tables run when no ``--sizes`` are given: (pass, size, batch,
#: models). SOFT at 1024x1024 with the official landmarks (m ~ 1 000 per
#: head, Newton work ~ m^3) is not in them: bounded landmarks
#: (``landmark_grid=7``) only.
DEFAULT_TABLES = (
    ('train', (224, 224), 8,
     ('soft-tiny', 'soft-tiny-before', 'soft-tiny-grid7', 'pvt-v2-b1',
      'deit-tiny', 'pcpvt-s')),
    ('infer', (224, 224), 8,
     ('soft-tiny', 'soft-tiny-before', 'soft-tiny-grid7', 'pvt-v2-b1',
      'deit-tiny', 'pcpvt-s')),
    ('train', (1024, 1024), 1,
     ('soft-tiny-grid7', 'soft-tiny-grid7-before', 'pvt-v2-b1', 'deit-tiny')),
)


def static_skip(name: str, mode: str) -> Optional[str]:
    """Why ``name`` cannot run in ``mode`` here, known without starting a
    process (None if it can)."""
    if name == 'pvt-v2-b1' and importlib.util.find_spec('timm') is None:
        return 'timm not installed'
    if name.startswith('deit') and mode == 'backbone':
        return 'DeiT has no feature pyramid'
    return None


def model_subject(name: str, mode: str, size: Tuple[int, int]) -> dict:
    """The measured subject of a model name.

    Args:
        name (str): One of :data:`ALL_MODELS` (``*-before`` is built the
            same way, from whichever soft_mm its process imports).
        mode (str): ``'cls'`` (a classifier's logits) or ``'backbone'``
            (the four feature maps).
        size (tuple): Input ``(H, W)``; ViT position tables are built for it.

    Returns:
        dict: A ``'model'`` subject for :func:`soft_mm.benchmark.measure
        .measure`.
    """
    if name in TEST_MODELS:
        return dict(kind='model', toy=8 if name == 'toy' else 32)
    if name == 'pvt-v2-b1':
        return dict(kind='model', timm='pvt_v2_b1',
                    features_only=mode == 'backbone')
    pyramid = (0, 1, 2, 3) if mode == 'backbone' else (3, )
    imports = []
    if name.startswith('soft-tiny'):
        imports = ['soft_mm']  # registers SOFT
        backbone = dict(type='SOFT', arch='tiny', drop_path_rate=0.)
        if 'grid7' in name:
            backbone['landmark_grid'] = 7
        if name.endswith('-cp'):  # activation checkpointing per block
            backbone['with_cp'] = True
        if mode == 'backbone':
            backbone.update(out_indices=(0, 1, 2, 3), out_type='featmap')
        channels, neck = 512, False
    elif name.startswith('deit'):
        backbone = dict(type='VisionTransformer', arch=name,
                        img_size=list(size), patch_size=16,
                        drop_path_rate=0.)
        channels, neck = (192 if name == 'deit-tiny' else 384), False
    elif name == 'pcpvt-s':
        backbone = dict(type='PCPVT', arch='small', drop_path_rate=0.,
                        out_indices=pyramid)
        channels, neck = 512, True
    elif name == 'swin-t':
        backbone = dict(type='SwinTransformer', arch='tiny',
                        img_size=list(size), drop_path_rate=0.,
                        pad_small_map=True, out_indices=pyramid)
        channels, neck = 768, True
    else:
        raise ValueError(f'unknown model {name!r}')
    if mode == 'backbone':
        return dict(kind='model', imports=imports, registry=backbone)
    classifier = dict(
        type='ImageClassifier',
        backbone=backbone,
        neck=dict(type='GlobalAveragePooling') if neck else None,
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=channels))
    return dict(kind='model', imports=imports, registry=classifier,
                tensor_mode=True)


def dense_skip(task: str) -> Optional[str]:
    """Why a dense task cannot run here (None if it can)."""
    lib = 'mmseg' if DENSE_TASKS[task][1] == 'seg' else 'mmdet'
    if importlib.util.find_spec(lib) is None:
        return f'{lib} not installed (bash tools/install_mmcv.sh)'
    if not _has_mmcv_ops():
        return ('mmcv without compiled ops (mmcv-lite; full mmcv: bash '
                'tools/install_mmcv.sh)')
    return None


def _has_mmcv_ops() -> bool:
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except ImportError:
        return False


def dense_backbone(name: str, task: str) -> Tuple[Optional[dict], list]:
    """A dense backbone's config (None: the config file's SOFT-Norm-tiny)
    and its four output widths."""
    det = task == 'det'
    if name == 'soft-norm-tiny':
        return None, [64, 128, 320, 512]
    if name == 'pvtv2-b1':  # mmseg has none: mmdet's in both
        return dict(type='mmdet.PyramidVisionTransformerV2', embed_dims=64,
                    num_layers=[2, 2, 2, 2], drop_path_rate=0.), [
                        64, 128, 320, 512]
    if name == 'swin-t':
        return dict(type='mmdet.SwinTransformer' if det else
                    'mmseg.SwinTransformer', embed_dims=96,
                    depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                    window_size=7, mlp_ratio=4, qkv_bias=True,
                    drop_path_rate=0., patch_norm=True,
                    out_indices=(0, 1, 2, 3)), [96, 192, 384, 768]
    if name == 'resnet-50':
        if det:
            return dict(type='mmdet.ResNet', depth=50, num_stages=4,
                        out_indices=(0, 1, 2, 3), frozen_stages=1,
                        norm_cfg=dict(type='BN', requires_grad=True),
                        norm_eval=True, style='pytorch'), [
                            256, 512, 1024, 2048]
        return dict(type='mmseg.ResNetV1c', depth=50, num_stages=4,
                    out_indices=(0, 1, 2, 3), dilations=(1, 1, 1, 1),
                    strides=(1, 2, 2, 2),
                    norm_cfg=dict(type='BN', requires_grad=True),
                    norm_eval=False, style='pytorch',
                    contract_dilation=True), [256, 512, 1024, 2048]
    raise ValueError(f'unknown dense backbone {name!r}')


def dense_subject(name: str, task: str) -> dict:
    """The measured subject of a dense backbone in a task of
    :data:`DENSE_TASKS`."""
    config, kind, masks = DENSE_TASKS[task]
    backbone, channels = dense_backbone(name, kind)
    update = {}
    if backbone is None:
        update = dict(drop_path_rate=0., arch='tiny')
    return dict(kind='dense', imports=['soft_mm'],
                config=osp.join(CURRENT_ROOT, config), task=kind,
                masks=masks, backbone=backbone, backbone_update=update,
                channels=channels)


def tiny_stages() -> Dict[int, Tuple[int, int, int]]:
    """``{stage: (heads, sr, head_dim)}`` of SOFT-tiny's SOFT-attention
    stages (1-3)."""
    arch = ARCH_ZOO['tiny']
    return {
        i + 1: (arch['num_heads'][i], sr,
                arch['embed_dims'][i] // arch['num_heads'][i])
        for i, sr in enumerate(ARCH_DEFAULTS['sr_ratios'])
    }


def stage_shape(size: int, stage: int, batch: int) -> Tuple[int, ...]:
    """``(B, h, n, m, d)`` of a SOFT-tiny attention stage at a square input
    size (the official landmark ratios)."""
    heads, sr, head_dim = tiny_stages()[stage]
    res = size // (4 * 2**(stage - 1))
    return batch, heads, res * res, (res // sr)**2, head_dim


def model_tables(models: Optional[Sequence[str]] = None,
                 sizes: Optional[Sequence[Tuple[int, int]]] = None,
                 batches: Sequence[int] = (1, ),
                 passes: Sequence[str] = ('infer', 'train'),
                 precisions: Sequence[str] = ('fp32', ),
                 compiles: Sequence[str] = ('off', ),
                 mode: str = 'cls',
                 before: bool = False) -> List[dict]:
    """The tables of the model benchmark: :data:`DEFAULT_TABLES` (reduced to
    ``models``) without ``sizes``, else every size x batch x pass; each once
    per precision and compile setting.

    Returns:
        list[dict]: ``table`` (1, 2, ...), ``pass_``, ``size``, ``batch``,
        ``precision``, ``compile_``, ``models``; tables left without a
        model are dropped.
    """
    if sizes is None:
        base = [(p, s, b,
                 tuple(m for m in names if models is None or m in models))
                for p, s, b, names in DEFAULT_TABLES]
    else:
        names = tuple(models or (
            (CLS_MODELS if mode == 'cls' else BACKBONE_MODELS) +
            (BEFORE_MODELS[:1] if before else ())))
        base = [(p, s, b, names) for s in sizes for b in batches
                for p in passes]
    tables = [dict(pass_=p, size=s, batch=b, precision=precision,
                   compile_=compile_, models=names)
              for p, s, b, names in base if names
              for precision in precisions for compile_ in compiles]
    for i, table in enumerate(tables, 1):
        table['table'] = i
    return tables


def dense_tables(models: Optional[Sequence[str]] = None,
                 tasks: Optional[Sequence[str]] = None,
                 sizes: Optional[Sequence[Tuple[int, int]]] = None,
                 passes: Sequence[str] = ('train', 'infer')) -> List[dict]:
    """The tables of ``--mode dense``: :data:`DENSE_TABLES` (reduced to
    ``tasks``) without ``sizes``, else every task x size; every pass. A
    task's sizes run from fewest to most pixels (the larger are predicted
    from the smaller).

    Returns:
        list[dict]: :func:`model_tables`'s keys and ``task``.
    """
    names = tuple(models or DENSE_MODELS)
    if sizes is None:
        base = [(t, s) for t, s in DENSE_TABLES if tasks is None or t in tasks]
    else:
        base = [(t, s) for t in (tasks or DENSE_TASKS) for s in sizes]
    order = list(dict.fromkeys(t for t, _ in base))
    base = sorted(set(base), key=lambda ts: (order.index(ts[0]), ts[1][0] *
                                             ts[1][1], ts[1]))
    tables = [dict(task=t, pass_=p, size=s, batch=DENSE_BATCH[t],
                   precision='fp32', compile_='off', models=names)
              for t, s in base for p in passes]
    for i, table in enumerate(tables, 1):
        table['table'] = i
    return tables


def table_title(table: dict) -> str:
    """``'train 224x224, batch 8, fp32, eager'`` (a dense table: its task
    first)."""
    h, w = table['size']
    task = f"{table['task']} " if table.get('task') else ''
    return (f"{task}{table['pass_']} {h}x{w}, batch {table['batch']}, "
            f"{table['precision']}, "
            f"{'torch.compile' if table['compile_'] == 'on' else 'eager'}")


def model_cases(tables: Sequence[dict],
                mode: str,
                before_root: Optional[str] = None,
                skip: Sequence[str] = (),
                allocators: Sequence[str] = ('default', )) -> List[Case]:
    """One case per model of every table (and allocator setting).

    Args:
        tables (Sequence[dict]): :func:`model_tables`'s.
        mode (str): ``'cls'`` or ``'backbone'``.
        before_root (str, optional): The checkout ``*-before`` models
            import soft_mm from.
        skip (Sequence[str]): ``MODEL@HxW[@pass]`` not to run.
        allocators (Sequence[str]): Keys of
            :data:`~soft_mm.benchmark.allocators.ALLOCATORS`: each model is
            measured under each, named ``MODEL+SETTING`` (``MODEL`` for
            ``'default'``).
    """
    # Looked up once per setting: a preloaded library is found by an
    # ldconfig subprocess.
    envs = {a: allocator_env(a) for a in allocators if a != 'default'}
    cases = []
    for table in tables:
        for name in table['models']:
            for allocator in allocators:
                case = _model_case(table, name, mode, before_root, skip)
                if allocator != 'default':
                    case.name = f'{name}+{allocator}'
                    env, missing = envs[allocator]
                    case.env, case.skip = dict(env), case.skip or missing
                cases.append(case)
    return cases


def _model_case(table: dict, name: str, mode: str,
                before_root: Optional[str], skip: Sequence[str]) -> Case:
    """The case of model ``name`` in ``table`` (see :func:`model_cases`)."""
    h, w = table['size']
    before = name.endswith('-before')
    why = static_skip(name, mode)
    if before and not before_root:
        why = 'no --before-root given'
    if {f'{name}@{h}x{w}', f'{name}@{h}x{w}@{table["pass_"]}'} & set(skip):
        why = '--skip'
    source = ''
    if before_root and name.startswith('soft-tiny'):
        source = ('soft_mm of --before-root' if before else
                  'soft_mm of this tree')
    if table.get('task'):
        why = why or dense_skip(table['task'])
        subject = dense_subject(name, table['task'])
    else:
        subject = model_subject(name[:-len('-before')] if before else name,
                                mode, table['size'])
    settings = {'pass': table['pass_'], 'height': h, 'width': w,
                'batch': table['batch'], 'precision': table['precision'],
                'compile': table['compile_']}
    if table.get('task'):
        settings = {'task': table['task'], **settings}
    return Case(table['table'], name, subject, settings,
                root=before_root if before else CURRENT_ROOT, skip=why,
                note=source)


def attention_cases(sizes: Sequence[int], stages: Sequence[int],
                    batches: Sequence[int], variants: Sequence[tuple],
                    norm: bool = False, dtype: str = 'float32',
                    first_table: int = 1) -> Tuple[List[Case], dict]:
    """The op benchmark's tables: one per (size, stage, batch, pass), the
    variants (``(name, impl, compiled)``) side by side.

    Returns:
        tuple[list[Case], dict]: The cases and each table's leading cells
        (size, stage, B, h, n, m, pass).
    """
    cases, leads, table = [], {}, first_table
    for size in sizes:
        for stage in stages:
            for batch in batches:
                shape = stage_shape(size, stage, batch)
                for pass_ in ('infer', 'train'):
                    leads[table] = [size, stage, *shape[:4],
                                    'fwd+bwd' if pass_ == 'train' else 'fwd']
                    for name, impl, compiled in variants:
                        subject = dict(kind='attention', shape=list(shape),
                                       impl=impl, compile=compiled,
                                       norm=norm, dtype=dtype)
                        cases.append(Case(table, name, subject,
                                          {'pass': pass_}))
                    table += 1
    return cases, leads


def newton_cases(sizes: Sequence[int], stages: Sequence[int],
                 batches: Sequence[int], variants: Sequence[tuple],
                 first_table: int = 1) -> Tuple[List[Case], dict]:
    """The Newton iteration alone: one table per distinct ``(B * h, m)``
    of the stages, the variants (``(name, impl)``) side by side.

    Returns:
        tuple[list[Case], dict]: The cases and each table's leading cells
        (size, stage, B*h, m).
    """
    cases, leads, table, seen = [], {}, first_table, set()
    for size in sizes:
        for stage in stages:
            for batch in batches:
                b, h, _, m, d = stage_shape(size, stage, batch)
                if (b * h, m) in seen:
                    continue
                seen.add((b * h, m))
                leads[table] = [size, stage, b * h, m]
                for name, impl in variants:
                    subject = dict(kind='newton', shape=[b * h, m, d],
                                   impl=impl)
                    cases.append(Case(table, name, subject,
                                      {'pass': 'infer'}))
                table += 1
    return cases, leads
