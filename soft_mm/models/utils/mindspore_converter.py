# Copyright (c) soft_mm contributors. All rights reserved.
"""Convert the seed's MindSpore SOFT checkpoints (``SOFT.md`` s. 6b).

The MindSpore port keeps the official tensor layouts (Dense weights are
``(out, in)``, convs ``(out, in, kh, kw)``) under other names: LayerNorm and
BatchNorm use ``gamma``/``beta`` (and ``moving_mean``/``moving_variance``),
stage-4 blocks are residual cells (``layers.{0,1}.cell.{0,1}``) and every
patch embedding carries unused layers, which are skipped by name. Its convs
have no bias, so the converted model needs ``conv_bias=False``; its other
numerical differences (tanh GELU everywhere, stage-4 LayerNorm eps 1e-7)
are backbone options set by
``configs/soft/soft-tiny_mindspore-port_in1k.py``.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from .checkpoint_io import CheckpointError, short_list
from .mindspore_ckpt import read_mindspore_checkpoint
from .official_converter import (BACKBONE, arch_name,
                                 complete_converted_state)

_NORM = {'gamma': 'weight', 'beta': 'bias'}
_BN = {**_NORM, 'moving_mean': 'running_mean',
       'moving_variance': 'running_var'}
_SOFT_BLOCK = {
    'att.mha.W_q': 'attn.q',
    'att.mha.W_v': 'attn.v',
    'att.mha.ff': 'attn.proj',
    'att.mha.attn.Qlandmark_op': 'attn.landmark_conv',
    'att.mha.attn.conv': 'attn.local_conv',
    'att.ff1': 'ffn.fc1',
    'att.ff2': 'ffn.fc2',
}
_SOFT_BLOCK_NORMS = {
    'att.mha.attn.Qnorm_act.0': 'attn.landmark_norm',
    'att.norm1': 'norm1',
    'att.norm2': 'norm2',
}
_CLS_BLOCK = {
    'layers.0.cell.1.q': 'attn.q',
    'layers.0.cell.1.kv': 'attn.kv',
    'layers.0.cell.1.proj': 'attn.proj',
    'layers.1.cell.1.ff1': 'mlp.fc1',
    'layers.1.cell.1.ff2': 'mlp.fc2',
}
_CLS_BLOCK_NORMS = {'layers.0.cell.0': 'norm1', 'layers.1.cell.0': 'norm2'}
#: Training-state tags a MindSpore ``save_checkpoint`` may add (optimizer
#: moments, loss scale, counters); skipped by name and reported.
_TRAINING_STATE = re.compile(
    r'(moments|adam_m|adam_v|accum)\..+|global_step|learning_rate|'
    r'scale_sense|beta[12]_power|current_iterator_step|'
    r'last_overflow_iterator_step|epoch_num|step_num')

SKIP = 'skip'


def map_mindspore_key(tag: str) -> Optional[str]:
    """soft_mm's name for a MindSpore tag, :data:`SKIP` or None (unknown)."""
    m = re.fullmatch(r'patch_embed([1-4])\.(conv|norm)([1-3]?)\.(\w+)', tag)
    if m:
        stage, kind, unit, param = int(m[1]) - 1, m[2], m[3], m[4]
        # Stage 1 uses only its 3-unit stem, stages 2-4 only `conv`/`norm`.
        used = bool(unit) == (stage == 0)
        valid = (param == 'weight') if kind == 'conv' else param in _BN
        if not valid:
            return None
        if not used:
            return SKIP
        unit = int(unit) - 1 if unit else 0
        if kind == 'conv':
            return f'{BACKBONE}patch_embeds.{stage}.projection.{unit}.conv.weight'
        return (f'{BACKBONE}patch_embeds.{stage}.projection.{unit}.bn.'
                f'{_BN[param]}')
    m = re.fullmatch(r'pos_embed([1-4])', tag)
    if m:
        return f'{BACKBONE}pos_embeds.{int(m[1]) - 1}'
    if tag == 'cls':
        return f'{BACKBONE}cls_token'
    m = re.fullmatch(r'norm\.(gamma|beta)', tag)
    if m:
        return f'{BACKBONE}norm.{_NORM[m[1]]}'
    m = re.fullmatch(r'head\.(weight|bias)', tag)
    if m:
        return f'head.fc.{m[1]}'
    m = re.fullmatch(r'block([1-3])\.(\d+)\.(.+)\.(\w+)', tag)
    if m:
        prefix = f'{BACKBONE}stages.{int(m[1]) - 1}.{m[2]}.'
        if m[3] in _SOFT_BLOCK and m[4] in ('weight', 'bias'):
            return prefix + f'{_SOFT_BLOCK[m[3]]}.{m[4]}'
        if m[3] in _SOFT_BLOCK_NORMS and m[4] in _NORM:
            return prefix + f'{_SOFT_BLOCK_NORMS[m[3]]}.{_NORM[m[4]]}'
        return None
    m = re.fullmatch(r'block4\.(\d+)\.(.+)\.(\w+)', tag)
    if m:
        prefix = f'{BACKBONE}stages.3.{m[1]}.'
        if m[2] in _CLS_BLOCK and m[3] in ('weight', 'bias'):
            return prefix + f'{_CLS_BLOCK[m[2]]}.{m[3]}'
        if m[2] in _CLS_BLOCK_NORMS and m[3] in _NORM:
            return prefix + f'{_CLS_BLOCK_NORMS[m[2]]}.{_NORM[m[3]]}'
        return None
    if _TRAINING_STATE.fullmatch(tag):
        return SKIP
    return None


def infer_mindspore_arch(tensors: Dict[str, torch.Tensor],
                         path: str) -> Tuple[dict, Optional[int]]:
    """SOFT arch and head classes from the MindSpore shapes.

    Returns:
        tuple[dict, int | None]: The arch dict and ``num_classes``.
    """
    from .official_converter import infer_official_arch

    # Re-use the official inference on a view with official names: the
    # shape-bearing tensors are the same ones.
    def get(tag):
        if tag not in tensors:
            raise CheckpointError(f'{path}: missing tensor {tag!r}, needed to '
                                  'infer the architecture')
        return tensors[tag]

    view = {
        'patch_embed1.proj.0.weight': get('patch_embed1.conv1.weight'),
        'patch_embed1.proj.6.weight': get('patch_embed1.conv3.weight'),
        'patch_embed1.proj.3.weight': get('patch_embed1.conv2.weight'),
    }
    for s in (2, 3, 4):
        view[f'patch_embed{s}.proj.0.weight'] = get(
            f'patch_embed{s}.conv.weight')
    for s in (1, 2, 3):
        for name in ('Qlandmark_op', 'conv'):
            tag = f'block{s}.0.att.mha.attn.{name}.weight'
            view[tag] = get(tag)
    for tag, t in tensors.items():
        m = re.match(r'block[1-4]\.\d+\.', tag)
        if m:  # one entry per block is enough to count the depths
            view.setdefault(m[0], t)
    view['block1.0.att.ff1.weight'] = get('block1.0.att.ff1.weight')
    view['block4.0.mlp.fc1.weight'] = get('block4.0.layers.1.cell.1.ff1.weight')
    arch, _ = infer_official_arch(view, path)
    num_classes = (tensors['head.weight'].shape[0]
                   if 'head.weight' in tensors else None)
    return arch, num_classes


def convert_mindspore_tensors(tensors: Dict[str, torch.Tensor],
                              path: str = '<tensors>',
                              dtype: torch.dtype = torch.float32
                              ) -> Tuple[dict, dict]:
    """Rename and cast MindSpore tensors to a soft_mm ImageClassifier.

    Args:
        tensors (dict): Tag to tensor, as read by
            :func:`read_mindspore_checkpoint`.
        path (str): File name, for messages.
        dtype (torch.dtype): Floating dtype of the result (fp16 files are
            widened). Defaults to float32.

    Returns:
        tuple[dict, dict]: State dict and meta (``arch``, ``arch_name``,
        ``num_classes``, ``skipped`` tags, ``source_dtypes``).
    """
    mapped = {tag: map_mindspore_key(tag) for tag in tensors}
    unknown = [tag for tag, name in mapped.items() if name is None]
    if unknown:
        raise CheckpointError(f'{path}: {len(unknown)} tensors are not part '
                              'of the MindSpore SOFT port: '
                              f'{short_list(unknown)}')
    arch, num_classes = infer_mindspore_arch(tensors, path)
    converted = OrderedDict()
    for tag, name in mapped.items():
        if name == SKIP:
            continue
        t = tensors[tag]
        converted[name] = t.to(dtype) if t.is_floating_point() else t
    converted, filled = complete_converted_state(
        converted, arch, False, num_classes, path,
        'the SOFT architecture inferred from its tensors')
    meta = dict(
        arch=arch,
        arch_name=arch_name(arch),
        attn_norm=False,
        conv_bias=False,
        num_classes=num_classes,
        filled=filled,
        skipped=[tag for tag, name in mapped.items() if name == SKIP],
        source_dtypes=sorted({str(t.dtype) for t in tensors.values()}))
    return converted, meta


def load_mindspore_checkpoint(path: str) -> dict:
    """Read a MindSpore SOFT ``.ckpt`` as an mmpretrain checkpoint dict.

    Args:
        path (str): The ``.ckpt`` file.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {...}}`` (float32 tensors).
    """
    converted, meta = convert_mindspore_tensors(
        read_mindspore_checkpoint(path), path)
    meta.update(source_file=str(path), converter='mindspore2mmpretrain')
    return dict(state_dict=converted, meta=meta)
