# Copyright (c) soft_mm contributors. All rights reserved.
"""Read and convert the seed's MindSpore SOFT checkpoints, without MindSpore.

A ``.ckpt`` is one protobuf message (``docs/design.md``, "Checkpoint
layouts")::

    message Checkpoint { repeated Value value = 1; }
    message Value {
      required string tag = 1;
      oneof value { TensorProto tensor = 2; MapTensorProto maptensor = 3; }
    }
    message TensorProto {
      repeated int64 dims = 1;
      required string tensor_type = 2;   // 'Float32', 'Float16', ...
      required bytes tensor_content = 3; // little-endian, C order
    }

The message classes are built at run time from a ``FileDescriptorProto``,
so neither ``protoc`` nor generated code is needed, only ``protobuf``.

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
import math
import re
from collections import OrderedDict
from functools import lru_cache
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .io import CheckpointError, check_file, short_list
from .layout import (BACKBONE, SOFT_BLOCK_LAYERS, SOFT_BLOCK_NORMS, arch_name,
                     complete_converted_state)
from .official import infer_official_arch

#: MindSpore ``tensor_type`` names to numpy dtypes (little-endian).
MS_DTYPES = {
    'Float16': np.dtype('<f2'),
    'Float32': np.dtype('<f4'),
    'Float64': np.dtype('<f8'),
    'Int8': np.dtype('i1'),
    'Int16': np.dtype('<i2'),
    'Int32': np.dtype('<i4'),
    'Int64': np.dtype('<i8'),
    'UInt8': np.dtype('u1'),
    'Bool': np.dtype('?'),
    # bfloat16 has no numpy dtype: read as int16 bits, reinterpreted below.
    'BFloat16': np.dtype('<i2'),
}


@lru_cache(maxsize=1)
def checkpoint_message_class():
    """The protobuf class of a MindSpore ``Checkpoint`` message."""
    from google.protobuf import (descriptor_pb2, descriptor_pool,
                                 message_factory)
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name='soft_mm_mindspore_checkpoint.proto',
        package='soft_mm.mindspore',
        syntax='proto2')

    def add_field(msg, name, number, ftype, label, type_name=None,
                  oneof=None):
        field = msg.field.add(name=name, number=number, type=ftype,
                              label=label)
        if type_name:
            field.type_name = type_name
        if oneof is not None:
            field.oneof_index = oneof

    tensor = fdp.message_type.add(name='TensorProto')
    add_field(tensor, 'dims', 1, F.TYPE_INT64, F.LABEL_REPEATED)
    add_field(tensor, 'tensor_type', 2, F.TYPE_STRING, F.LABEL_REQUIRED)
    add_field(tensor, 'tensor_content', 3, F.TYPE_BYTES, F.LABEL_REQUIRED)
    tensor_type = '.soft_mm.mindspore.TensorProto'
    map_tensor = fdp.message_type.add(name='MapTensorProto')
    for i, name in enumerate(('key_tensor', 'value_tensor', 'status_tensor')):
        add_field(map_tensor, name, i + 1, F.TYPE_MESSAGE, F.LABEL_OPTIONAL,
                  tensor_type)
    value = fdp.message_type.add(name='Value')
    value.oneof_decl.add(name='value')
    add_field(value, 'tag', 1, F.TYPE_STRING, F.LABEL_REQUIRED)
    add_field(value, 'tensor', 2, F.TYPE_MESSAGE, F.LABEL_OPTIONAL,
              tensor_type, oneof=0)
    add_field(value, 'maptensor', 3, F.TYPE_MESSAGE, F.LABEL_OPTIONAL,
              '.soft_mm.mindspore.MapTensorProto', oneof=0)
    ckpt = fdp.message_type.add(name='Checkpoint')
    add_field(ckpt, 'value', 1, F.TYPE_MESSAGE, F.LABEL_REPEATED,
              '.soft_mm.mindspore.Value')
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName('soft_mm.mindspore.Checkpoint'))


def tensor_from_proto(tensor, tag: str, path: str) -> torch.Tensor:
    """Decode one ``TensorProto`` into a torch tensor (same dtype)."""
    ttype = tensor.tensor_type
    if ttype not in MS_DTYPES:
        raise CheckpointError(f'{path}: tensor {tag!r} has unsupported type '
                              f'{ttype!r} (known: {sorted(MS_DTYPES)})')
    dtype = MS_DTYPES[ttype]
    dims = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in dims):
        raise CheckpointError(f'{path}: tensor {tag!r} has negative dims '
                              f'{list(dims)}: corrupt file')
    # Python ints: numpy's int64 product can overflow and compare equal.
    numel = math.prod(dims)
    content = tensor.tensor_content
    if len(content) != numel * dtype.itemsize:
        raise CheckpointError(
            f'{path}: tensor {tag!r} holds {len(content)} bytes but dims '
            f'{list(dims)} of {ttype} need {numel * dtype.itemsize}')
    array = np.frombuffer(content, dtype=dtype).reshape(dims).copy()
    out = torch.from_numpy(array)
    if ttype == 'BFloat16':
        out = out.view(torch.bfloat16)
    return out


def read_mindspore_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """All tensors of a MindSpore ``.ckpt``, in file order.

    Args:
        path (str): The ``.ckpt`` file.

    Returns:
        OrderedDict[str, Tensor]: Tag to tensor, dtypes as stored.
    """
    from google.protobuf.message import DecodeError
    check_file(path)
    with open(path, 'rb') as f:
        data = f.read()
    msg = checkpoint_message_class()()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise CheckpointError(
            f'{path}: not a readable MindSpore checkpoint (corrupt or '
            f'truncated?): {" ".join(str(e).split())[:200]}') from None
    if not msg.value:
        raise CheckpointError(f'{path}: the checkpoint holds no tensors')
    tensors = OrderedDict()
    for value in msg.value:
        kind = value.WhichOneof('value')
        if kind != 'tensor':
            raise CheckpointError(f'{path}: entry {value.tag!r} is a '
                                  f'{kind or "empty value"}, not a tensor')
        if value.tag in tensors:
            raise CheckpointError(f'{path}: tensor {value.tag!r} appears '
                                  'twice')
        tensors[value.tag] = tensor_from_proto(value.tensor, value.tag, path)
    return tensors


_NORM = {'gamma': 'weight', 'beta': 'bias'}
_LINEAR = {'weight': 'weight', 'bias': 'bias'}
_BN = {**_NORM, 'moving_mean': 'running_mean',
       'moving_variance': 'running_var'}
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
            return (f'{BACKBONE}patch_embeds.{stage}.projection.{unit}.'
                    'conv.weight')
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
        layer = SOFT_BLOCK_LAYERS.get(m[3])
        if layer is None:
            return None
        # The same layers as the official code; norms call their
        # parameters gamma/beta.
        params = _NORM if m[3] in SOFT_BLOCK_NORMS else _LINEAR
        return prefix + f'{layer}.{params[m[4]]}' if m[4] in params else None
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
                         path: str) -> Tuple[dict, int]:
    """SOFT arch and head classes from the MindSpore shapes.

    Returns:
        tuple[dict, int]: The arch dict and ``num_classes``.
    """
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
    view['block4.0.mlp.fc1.weight'] = get(
        'block4.0.layers.1.cell.1.ff1.weight')
    arch, _ = infer_official_arch(view, path)
    # The port saves the whole classifier, its head last: a file without
    # it was cut short at a tensor boundary (which protobuf cannot tell
    # from a whole file), or is not a SOFT classifier checkpoint.
    missing = [t for t in ('head.weight', 'head.bias') if t not in tensors]
    if missing:
        raise CheckpointError(
            f'{path}: no classifier head ({", ".join(missing)} missing); '
            'the MindSpore SOFT port saves the whole classifier with its '
            'head last, so the file is cut short (truncated?) or not one of '
            'its checkpoints')
    return arch, int(tensors['head.weight'].shape[0])


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
