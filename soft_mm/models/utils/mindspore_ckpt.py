# Copyright (c) soft_mm contributors. All rights reserved.
"""Read MindSpore ``.ckpt`` files without MindSpore.

A ``.ckpt`` is one protobuf message (``SOFT.md`` s. 6b)::

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
"""
from collections import OrderedDict
from functools import lru_cache
from typing import Dict

import numpy as np
import torch

from .checkpoint_io import CheckpointError, check_file

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
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf import message_factory
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
    numel = int(np.prod(dims)) if dims else 1
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
