# Copyright (c) soft_mm contributors. All rights reserved.
"""``init_cfg=dict(type='Pretrained', ...)`` of the SOFT backbone, loaded
strictly and reported: what fine-tuning starts from.

mmengine's ``PretrainedInit`` loads what fits and only warns about the rest
(or, with ``prefix``, says nothing about keys outside it), so a wrong file
trains from random weights. Here every tensor the backbone has must come
from the file (shapes and dtype kinds checked, position tables resized to
the backbone's ``img_size`` once), anything else is an error naming it, and
the log says what was loaded, what was resized and what of the file was
not used (e.g. the old classifier head, re-initialised for the new
classes).
"""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmpretrain.models.utils import resize_pos_embed

from .io import (CheckpointError, compare_state_dicts, extract_state_dict,
                 short_list, strip_module_prefix)
from .loading import read_checkpoint


def _side(tokens: int) -> int:
    side = int(round(tokens**0.5))
    return side if side * side == tokens else 0


def resize_position_tables(backbone: nn.Module,
                           state: Dict[str, torch.Tensor],
                           path: str) -> List[str]:
    """Resize the file's (square) position tables to the backbone's, in
    place, as the backbone's forward would for another input size.

    Returns:
        list[str]: ``'pos_embeds.0 56x56 -> 96x96'`` for each resized table.
    """
    resized = []
    for i, (pos_embed, (h, w)) in enumerate(
            zip(backbone.pos_embeds, backbone.pos_shapes)):
        key = f'pos_embeds.{i}'
        table = state.get(key)
        if table is None or table.shape == pos_embed.shape:
            continue
        extra = pos_embed.shape[1] - h * w  # the cls token's row (stage 4)
        side = _side(table.shape[1] - extra) if table.dim() == 3 else 0
        if not side or table.shape[2] != pos_embed.shape[2]:
            continue  # not a table of this model: the key check says so
        state[key] = resize_pos_embed(
            table.float(), (side, side), (h, w),
            mode=backbone.interpolate_mode,
            num_extra_tokens=extra).to(table.dtype)
        resized.append(f'{key} {side}x{side} -> {h}x{w}')
    return resized


def select_prefix(state: Dict[str, torch.Tensor], prefix: str,
                  path: str) -> Tuple[dict, list]:
    """The tensors under ``prefix`` (prefix removed), and the other keys."""
    if not prefix:
        return dict(state), []
    taken = {k[len(prefix):]: v for k, v in state.items()
             if k.startswith(prefix)}
    if not taken:
        raise CheckpointError(
            f'{path}: no tensor name starts with {prefix!r} (the file has '
            f'{short_list(state)}); set init_cfg prefix to match it')
    return taken, [k for k in state if not k.startswith(prefix)]


def load_pretrained_backbone(backbone: nn.Module, init_cfg: dict) -> None:
    """Load ``init_cfg['checkpoint']`` into ``backbone`` strictly.

    Args:
        backbone (nn.Module): A SOFT backbone.
        init_cfg (dict): ``type='Pretrained'``, ``checkpoint`` (a file or
            any path :func:`read_checkpoint` reads, e.g.
            ``soft-official://``), ``prefix`` (optional, e.g.
            ``'backbone.'`` to take the backbone out of a classifier).

    Raises:
        CheckpointError: The file is unreadable or its tensors (under the
            prefix) do not fit the backbone key for key, shape for shape.
    """
    path, prefix = init_cfg['checkpoint'], init_cfg.get('prefix') or ''
    state = strip_module_prefix(extract_state_dict(read_checkpoint(path),
                                                   path))
    taken, unused = select_prefix(state, prefix, path)
    resized = resize_position_tables(backbone, taken, path)
    what = f'{type(backbone).__name__} (tensors {prefix or ""}*)'
    compare_state_dicts(taken, backbone.state_dict(), path, what)
    backbone.load_state_dict(taken, strict=True)
    lines = [f'{type(backbone).__name__}: loaded all {len(taken)} tensors '
             f'of the backbone from {path}' +
             (f" (names '{prefix}*')" if prefix else '')]
    if resized:
        lines.append('  position tables resized to img_size '
                     f'{backbone.img_size}: {short_list(resized, 4)}')
    if unused:
        lines.append(
            f'  not used from the file: {len(unused)} tensors outside '
            f"'{prefix}': " + short_list(
                f'{k} {tuple(state[k].shape)}' for k in unused) +
            ' (the rest of the model, e.g. a head for other classes, keeps '
            'its own initialisation)')
    print_log('\n'.join(lines), logger='current')


def register_pretrained_loader() -> None:
    """Make the SOFT backbone load ``Pretrained`` through
    :func:`load_pretrained_backbone` (run when :mod:`soft_mm` is
    imported)."""
    from soft_mm.models.backbones import SOFT
    SOFT.pretrained_loader = load_pretrained_backbone
