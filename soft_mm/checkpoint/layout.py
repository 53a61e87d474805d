# Copyright (c) soft_mm contributors. All rights reserved.
"""soft_mm's key layout, the target of every checkpoint conversion.

The official PyTorch and the MindSpore SOFT share their SOFT-block layer
names (:data:`SOFT_BLOCK_LAYERS`, one table for both converters); after
renaming, a converted state dict is checked against the names and shapes of
a model built from the architecture the source's shapes imply.
"""
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from soft_mm.models.backbones import SOFT
from .io import compare_state_dicts

#: Prefix of every backbone tensor in an mmpretrain ImageClassifier.
BACKBONE = 'backbone.'

#: Layer names inside a SOFT block (stages 1-3), the official (and
#: MindSpore) name to soft_mm's. Parameters keep their last name component,
#: except that MindSpore calls the norm parameters ``gamma``/``beta``.
SOFT_BLOCK_LAYERS = {
    'att.mha.W_q': 'attn.q',
    'att.mha.W_v': 'attn.v',
    'att.mha.ff': 'attn.proj',
    'att.mha.attn.Qlandmark_op': 'attn.landmark_conv',
    'att.mha.attn.Qnorm_act.0': 'attn.landmark_norm',
    'att.mha.attn.conv': 'attn.local_conv',
    'att.norm1': 'norm1',
    'att.norm2': 'norm2',
    'att.ff1': 'ffn.fc1',
    'att.ff2': 'ffn.fc2',
}
#: The norm layers among :data:`SOFT_BLOCK_LAYERS`.
SOFT_BLOCK_NORMS = frozenset(
    ('att.mha.attn.Qnorm_act.0', 'att.norm1', 'att.norm2'))


def arch_name(arch: dict) -> Optional[str]:
    """The name of the zoo arch equal to ``arch``, or None (a custom arch)."""
    parsed = SOFT.parse_arch(arch)
    for name in SOFT.arch_zoo:
        if SOFT.parse_arch(name) == parsed:
            return name
    return None


def expected_state(arch: dict,
                   conv_bias: bool,
                   num_classes: Optional[int],
                   **backbone_kwargs) -> Dict[str, torch.Tensor]:
    """Names and shapes of an ImageClassifier with this SOFT.

    Args:
        arch (dict): SOFT arch.
        conv_bias (bool): Bias in the patch-embedding convs.
        num_classes (int, optional): Linear head classes; None: no head.
        **backbone_kwargs: Other SOFT arguments.

    Returns:
        dict: ``backbone.*`` and ``head.fc.*`` names to tensors.
    """
    # Built on the CPU (SOFT's constructor reads drop rates with .tolist(),
    # which meta tensors refuse); only names and shapes are used.
    backbone = SOFT(
        arch=arch, conv_bias=conv_bias, init_cfg=None, **backbone_kwargs)
    state = OrderedDict(
        (BACKBONE + k, v) for k, v in backbone.state_dict().items())
    if num_classes is not None:
        state['head.fc.weight'] = torch.empty(num_classes,
                                              arch['embed_dims'][-1])
        state['head.fc.bias'] = torch.empty(num_classes)
    return state


def complete_converted_state(converted: Dict[str, torch.Tensor],
                             arch: dict, conv_bias: bool,
                             num_classes: Optional[int], path: str,
                             what: str) -> Tuple[OrderedDict, list]:
    """Check a renamed state dict against the model ``arch`` builds.

    BN ``num_batches_tracked`` counters the source lacks are added as 0
    (they only matter for BN momentum=None, which SOFT does not use); any
    other missing or unexpected key, or a wrong shape, is refused.

    Args:
        converted (dict): soft_mm names to tensors.
        arch (dict): The architecture inferred from the source.
        conv_bias (bool): Whether the source convs have biases.
        num_classes (int, optional): Head size; None for no head.
        path (str): File name, for messages.
        what (str): How ``arch`` was found, for messages.

    Returns:
        tuple[OrderedDict, list[str]]: The state dict in the model's key
        order (contiguous tensors) and the counter keys that were added.
    """
    expected = expected_state(arch, conv_bias, num_classes)
    filled = [
        k for k in expected
        if k.endswith('.num_batches_tracked') and k not in converted
    ]
    converted = dict(converted)
    for k in filled:
        converted[k] = torch.tensor(0, dtype=torch.long)
    compare_state_dicts(converted, expected, path, what)
    # Order as the model for readability of the saved file.
    ordered = OrderedDict((k, converted[k].contiguous()) for k in expected)
    return ordered, filled
