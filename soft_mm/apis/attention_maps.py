# Copyright (c) soft_mm contributors. All rights reserved.
"""What SOFT attention looks at: for one query position, the row of
``A B^-1 A^T`` in a block of every SOFT stage, per head, and a picture of
it over the image."""
from typing import List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from soft_mm.models.backbones.soft import SOFT, SoftBlock


class AttentionMap(NamedTuple):
    """One block's attention for one query.

    Attributes:
        stage (int): 0-based stage index.
        block (int): 0-based block index within the stage.
        hw_shape (tuple): The stage's token map ``(H, W)``.
        query_token (tuple): The query token ``(row, col)``.
        weights (Tensor): ``(heads, H, W)``: the weight the query gives
            every token (rows of ``A B^-1 A^T``, float32 on the CPU).
    """
    stage: int
    block: int
    hw_shape: Tuple[int, int]
    query_token: Tuple[int, int]
    weights: Tensor


def find_soft_backbone(model: nn.Module) -> SOFT:
    """The :class:`SOFT` backbone of ``model`` (or ``model`` itself)."""
    backbone = getattr(model, 'backbone', model)
    if not isinstance(backbone, SOFT):
        raise ValueError('attention maps need a SOFT backbone, got '
                         f'{type(backbone).__name__}')
    return backbone


def query_token(query: Sequence[float],
                hw_shape: Sequence[int]) -> Tuple[int, int]:
    """The token of a ``(H, W)`` map under ``query`` = ``(y, x)`` given as
    fractions of the image height and width, in ``[0, 1]``."""
    return tuple(
        min(int(frac * size), size - 1) for frac, size in zip(query, hw_shape))


def check_query(query: Sequence[float]) -> Tuple[float, float]:
    """``query`` as two floats in ``[0, 1]``, or ValueError naming it."""
    try:
        y, x = (float(v) for v in query)
    except (TypeError, ValueError):
        raise ValueError(
            'query must be two numbers (y, x), fractions of the image '
            f'height and width, got {query!r}') from None
    if not (0 <= y <= 1 and 0 <= x <= 1):
        raise ValueError('query (y, x) must be fractions of the image height '
                         f'and width in [0, 1], got ({y}, {x})')
    return y, x


@torch.no_grad()
def soft_attention_maps(model: nn.Module,
                        inputs: Tensor,
                        query: Sequence[float],
                        block: int = -1) -> List[AttentionMap]:
    """The attention of one query position in every SOFT stage.

    Runs the backbone once on ``inputs``, keeps the input of block
    ``block`` of each SOFT stage, and computes that layer's attention rows
    for the token under ``query`` (the class-token stage's softmax
    attention is not SOFT attention and is not shown).

    Args:
        model (nn.Module): A classifier with a SOFT backbone, or the
            backbone.
        inputs (Tensor): One preprocessed image ``(1, 3, H, W)``.
        query (Sequence[float]): ``(y, x)``, fractions of the image height
            and width in ``[0, 1]``.
        block (int): Which block of each stage (Python index; ``-1``: the
            last). Defaults to -1.

    Returns:
        list[AttentionMap]: One per SOFT stage, in order.
    """
    backbone = find_soft_backbone(model)
    query = check_query(query)
    if inputs.dim() != 4 or inputs.shape[0] != 1:
        raise ValueError('inputs must be one preprocessed image (1, C, H, W), '
                         f'got {tuple(inputs.shape)}')
    captured, handles = {}, []
    for i, stage in enumerate(backbone.stages):
        if not isinstance(stage[0], SoftBlock):
            continue
        if not -len(stage) <= block < len(stage):
            raise ValueError(f'block {block} does not exist: stage {i + 1} '
                             f'has {len(stage)} blocks')
        b = block % len(stage)

        def keep(module, args, i=i, b=b):
            captured[i] = (b, module, args[0], tuple(args[1]))

        handles.append(stage[b].attn.register_forward_pre_hook(keep))
    try:
        backbone(inputs)
    finally:
        for handle in handles:
            handle.remove()
    maps = []
    for i in sorted(captured):
        b, attn, x, hw_shape = captured[i]
        row, col = query_token(query, hw_shape)
        weights = attn.attention_rows(x, hw_shape, [row * hw_shape[1] + col])
        weights = weights[0, :, 0].reshape(-1, *hw_shape).float().cpu()
        maps.append(AttentionMap(i, b, hw_shape, (row, col), weights))
    return maps


def overlay(image: np.ndarray, weights: np.ndarray,
            alpha: float = 0.5) -> np.ndarray:
    """``weights`` ``(h, w)`` as a heat map over ``image`` (BGR uint8).

    Tokens are drawn as blocks (nearest upsampling): the map shows the
    token grid the stage really has. Colours are scaled to the map's own
    range (negative weights, which the inverse can give, are dark).
    """
    low, high = float(weights.min()), float(weights.max())
    scaled = (weights - low) / (high - low) if high > low else \
        np.zeros_like(weights)
    heat = cv2.resize((scaled * 255).astype(np.uint8),
                      (image.shape[1], image.shape[0]),
                      interpolation=cv2.INTER_NEAREST)
    heat = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 1 - alpha, heat, alpha, 0)


def render_attention_grid(image: np.ndarray,
                          maps: Sequence[AttentionMap],
                          query: Sequence[float],
                          cell: int = 160) -> np.ndarray:
    """A picture: one row per stage, the image then one column per head,
    each the head's attention over the image, the query marked.

    Args:
        image (np.ndarray): The image the model saw, BGR ``(H, W, 3)``
            uint8.
        maps (Sequence[AttentionMap]): From :func:`soft_attention_maps`.
        query (Sequence[float]): ``(y, x)`` as given to it.
        cell (int): Longer side of each cell in pixels. Defaults to 160.

    Returns:
        np.ndarray: BGR uint8.
    """
    y, x = check_query(query)
    scale = cell / max(image.shape[:2])
    ch, cw = (max(1, round(s * scale)) for s in image.shape[:2])
    base = cv2.resize(image, (cw, ch), interpolation=cv2.INTER_NEAREST)
    label_h = 18
    marker = (min(int(x * cw), cw - 1), min(int(y * ch), ch - 1))
    # Column 0: the image the model saw; then one column per head.
    cols = 1 + max(m.weights.shape[0] for m in maps)
    grid = np.full((len(maps) * (ch + label_h), cols * cw, 3), 255, np.uint8)
    for r, amap in enumerate(maps):
        tiles = [(f'stage {amap.stage + 1}: '
                  f'{amap.hw_shape[0]}x{amap.hw_shape[1]}', base.copy())]
        tiles += [(f'stage {amap.stage + 1} head {head + 1}',
                   overlay(base, weights))
                  for head, weights in enumerate(amap.weights.numpy())]
        top = r * (ch + label_h)
        for c, (label, tile) in enumerate(tiles):
            cv2.drawMarker(tile, marker, (255, 255, 255), cv2.MARKER_CROSS,
                           max(6, cw // 12), 2)
            left = c * cw
            grid[top + label_h:top + label_h + ch, left:left + cw] = tile
            cv2.putText(grid, label, (left + 2, top + label_h - 5),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return grid
