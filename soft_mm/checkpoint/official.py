"""Convert checkpoints of the official SOFT code (``fudan-zvg/SOFT``).

The official layout (``docs/design.md``, "Checkpoint layouts") and soft_mm's
differ only in names: every tensor keeps its shape and memory layout
(``W_q``/``W_v`` split heads as ``reshape(B, N, h, d)`` like soft_mm's
``q``/``v``; the landmark conv is one ``d x d`` conv shared by the heads; the
local conv is ``(h, 1, k, k)``). So the conversion is a table of renames,
followed by a strict comparison of every name and shape against a model
built from the inferred architecture.

What the keys cannot tell:

- plain SOFT vs SOFT-Norm: SOFT-Norm adds no parameter, the caller says
  which (``attn_norm``);
- the heads of stage 4: its layers are ``dim x dim`` whatever the heads;
  the official models use head dim 32 everywhere, so ``dim4 / 32`` (the
  head dim of stages 1-3 is read from the landmark conv and must be 32 too).
"""
import re
from typing import Dict, Optional, Tuple

import torch

from .io import (CheckpointError, safe_torch_load, short_list,
                 strip_module_prefix)
from .layout import (BACKBONE, SOFT_BLOCK_LAYERS, arch_name,
                     complete_converted_state)

_CLS_BLOCK = {
    'norm1': 'norm1',
    'attn.q': 'attn.q',
    'attn.kv': 'attn.kv',
    'attn.proj': 'attn.proj',
    'norm2': 'norm2',
    'mlp.fc1': 'mlp.fc1',
    'mlp.fc2': 'mlp.fc2',
}
_BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def map_official_key(key: str) -> Optional[str]:
    """soft_mm's name for an official key, or None if it is not SOFT's.

    Args:
        key (str): Official name, without a ``module.`` prefix.

    Returns:
        str | None: The full ImageClassifier name (``backbone.*``/
        ``head.fc.*``).
    """
    m = re.fullmatch(r'patch_embed([1-4])\.proj\.(\d+)\.(\w+)', key)
    if m:
        stage, layer, param = int(m[1]) - 1, int(m[2]), m[3]
        # Sequential(conv, bn, relu) * units: index 3u is the conv, 3u+1 BN.
        unit, kind = divmod(layer, 3)
        if kind == 0 and param in ('weight', 'bias'):
            return (f'{BACKBONE}patch_embeds.{stage}.projection.{unit}.'
                    f'conv.{param}')
        if kind == 1 and param in _BN:
            return (f'{BACKBONE}patch_embeds.{stage}.projection.{unit}.'
                    f'bn.{param}')
        return None
    m = re.fullmatch(r'pos_embed([1-4])', key)
    if m:
        return f'{BACKBONE}pos_embeds.{int(m[1]) - 1}'
    if key == 'cls_token':
        return f'{BACKBONE}cls_token'
    m = re.fullmatch(r'block([1-3])\.(\d+)\.(.+)\.(weight|bias)', key)
    if m and m[3] in SOFT_BLOCK_LAYERS:
        return (f'{BACKBONE}stages.{int(m[1]) - 1}.{m[2]}.'
                f'{SOFT_BLOCK_LAYERS[m[3]]}.{m[4]}')
    m = re.fullmatch(r'block4\.(\d+)\.(.+)\.(weight|bias)', key)
    if m and m[2] in _CLS_BLOCK:
        return f'{BACKBONE}stages.3.{m[1]}.{_CLS_BLOCK[m[2]]}.{m[3]}'
    m = re.fullmatch(r'norm\.(weight|bias)', key)
    if m:
        return f'{BACKBONE}norm.{m[1]}'
    m = re.fullmatch(r'head\.(weight|bias)', key)
    if m:
        return f'head.fc.{m[1]}'
    return None


def _shape(state: Dict[str, torch.Tensor], key: str, path: str):
    if key not in state:
        raise CheckpointError(f'{path}: missing key {key!r}, needed to infer '
                              'the architecture (is this a SOFT checkpoint?)')
    return tuple(state[key].shape)


def infer_official_arch(state: Dict[str, torch.Tensor],
                        path: str = '<state dict>') -> Tuple[dict, dict]:
    """Read the architecture off the official tensor shapes.

    Args:
        state (dict): Official state dict (no ``module.`` prefix).
        path (str): File name, for messages.

    Returns:
        tuple[dict, dict]: The SOFT ``arch`` dict (all keys of
        :meth:`SOFT.parse_arch`) and extras: ``conv_bias`` (bool),
        ``num_classes`` (int or None).
    """
    embed_dims, depths, heads = [], [], []
    sr_ratios, kernels = [], []
    n_stem = len({int(m[1]) for k in state
                  if (m := re.fullmatch(r'patch_embed1\.proj\.(\d+)\.weight',
                                        k)) and int(m[1]) % 3 == 0})
    stem_channels = _shape(state, 'patch_embed1.proj.0.weight', path)[0]
    for s in range(1, 5):
        last = 3 * (n_stem - 1) if s == 1 else 0
        embed_dims.append(
            _shape(state, f'patch_embed{s}.proj.{last}.weight', path)[0])
        blocks = {int(m[1]) for k in state
                  if (m := re.match(rf'block{s}\.(\d+)\.', k))}
        if not blocks:
            raise CheckpointError(f'{path}: no block{s}.* keys: not a SOFT '
                                  'checkpoint, or a truncated one')
        if blocks != set(range(len(blocks))):
            raise CheckpointError(f'{path}: block{s} indices are not '
                                  f'contiguous: {sorted(blocks)}')
        depths.append(len(blocks))
    head_dims = []
    for s in range(1, 4):
        pre = f'block{s}.0.att.mha.attn.'
        lm = _shape(state, pre + 'Qlandmark_op.weight', path)
        local = _shape(state, pre + 'conv.weight', path)
        head_dims.append(lm[0])
        sr_ratios.append(lm[-1])
        kernels.append(local[-1])
        heads.append(local[0])
        if heads[-1] * lm[0] != embed_dims[s - 1]:
            raise CheckpointError(
                f'{path}: stage {s} has {heads[-1]} heads of dim {lm[0]} '
                f'but {embed_dims[s - 1]} channels')
    if len(set(head_dims)) != 1:
        raise CheckpointError(f'{path}: head dims differ between stages '
                              f'{head_dims}; cannot infer the stage-4 heads')
    # Stage 4's weights do not depend on its heads; SOFT uses one head dim.
    if embed_dims[3] % head_dims[0]:
        raise CheckpointError(f'{path}: stage-4 width {embed_dims[3]} is not '
                              f'a multiple of the head dim {head_dims[0]}')
    heads.append(embed_dims[3] // head_dims[0])
    soft_hidden = _shape(state, 'block1.0.att.ff1.weight', path)[0]
    cls_hidden = _shape(state, 'block4.0.mlp.fc1.weight', path)[0]
    arch = dict(
        embed_dims=embed_dims,
        num_heads=heads,
        depths=depths,
        sr_ratios=sr_ratios,
        local_kernels=kernels,
        mlp_ratio=_ratio(cls_hidden, embed_dims[3]),
        soft_mlp_ratio=_ratio(soft_hidden, embed_dims[0]),
        stem_channels=stem_channels)
    extras = dict(
        conv_bias='patch_embed1.proj.0.bias' in state,
        num_classes=(state['head.weight'].shape[0]
                     if 'head.weight' in state else None))
    return arch, extras


def _ratio(hidden: int, dims: int):
    ratio = hidden / dims
    return int(ratio) if ratio.is_integer() else ratio


def select_official_state(ckpt, path: str, use_ema: bool = True):
    """Pick the official weights out of a loaded file.

    Args:
        ckpt: Loaded object: a timm checkpoint dict (``state_dict``,
            ``state_dict_ema``) or a bare state dict.
        path (str): File name, for messages.
        use_ema (bool): Prefer ``state_dict_ema``. Defaults to True.

    Returns:
        tuple[dict, str]: The state dict (``module.`` stripped) and which
        entry it came from (``'state_dict_ema'``, ``'state_dict'`` or
        ``'bare'``).
    """
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: expected a dict, got '
                              f'{type(ckpt).__name__}')
    if 'state_dict' in ckpt or 'state_dict_ema' in ckpt:
        if use_ema and 'state_dict_ema' in ckpt:
            source = 'state_dict_ema'
        elif not use_ema and 'state_dict' not in ckpt:
            raise CheckpointError(f'{path}: --no-ema asked for "state_dict" '
                                  'but the file has only "state_dict_ema"')
        else:
            source = 'state_dict'
        state = ckpt[source]
    else:
        source, state = 'bare', ckpt
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: {source} is a '
                              f'{type(state).__name__}, not a dict')
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f'{path}: {source} has non-tensor entries '
                              f'{short_list(bad)}: not a state dict')
    return strip_module_prefix(state), source


def convert_official_state_dict(state: Dict[str, torch.Tensor],
                                attn_norm: bool = False,
                                path: str = '<state dict>'
                                ) -> Tuple[dict, dict]:
    """Rename an official state dict to soft_mm's ImageClassifier.

    Args:
        state (dict): Official names to tensors (no ``module.`` prefix).
        attn_norm (bool): Whether the weights are SOFT-Norm (cannot be read
            from the keys). Defaults to False.
        path (str): File name, for messages.

    Returns:
        tuple[dict, dict]: The converted state dict and its meta
        (``arch``, ``arch_name``, ``attn_norm``, ``conv_bias``,
        ``num_classes``, ``filled``: keys added as defaults).
    """
    names = {k: map_official_key(k) for k in state}
    unknown = [k for k, name in names.items() if name is None]
    if unknown:
        raise CheckpointError(f'{path}: {len(unknown)} keys are not part of '
                              f'an official SOFT model: {short_list(unknown)}')
    arch, extras = infer_official_arch(state, path)
    converted, filled = complete_converted_state(
        {names[k]: v for k, v in state.items()}, arch, extras['conv_bias'],
        extras['num_classes'], path,
        'the SOFT architecture inferred from its keys')
    meta = dict(
        arch=arch,
        arch_name=arch_name(arch),
        attn_norm=attn_norm,
        conv_bias=extras['conv_bias'],
        num_classes=extras['num_classes'],
        filled=filled)
    return converted, meta


def load_official_checkpoint(path: str,
                             use_ema: bool = True,
                             attn_norm: bool = False) -> dict:
    """Read an official SOFT file and return an mmpretrain checkpoint dict.

    Args:
        path (str): The official ``.pth``/``.pth.tar``.
        use_ema (bool): Take the EMA weights when present. Defaults to True.
        attn_norm (bool): The file holds SOFT-Norm weights. Defaults to False.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {...}}`` loadable by mmengine.
    """
    ckpt = safe_torch_load(path)
    state, source = select_official_state(ckpt, path, use_ema)
    converted, meta = convert_official_state_dict(state, attn_norm, path)
    meta.update(source_file=str(path), source_entry=source,
                converter='soft2mmpretrain')
    return dict(state_dict=converted, meta=meta)
