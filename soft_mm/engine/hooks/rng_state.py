# Copyright (c) soft_mm contributors. All rights reserved.
"""Capture and restore the random generators a training process draws from.

The state is kept as plain Python values and CPU tensors only, so that a
checkpoint holding it still loads with ``torch.load(weights_only=True)``.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.device import is_cuda_available, is_npu_available


def get_rng_state() -> dict:
    """The state of Python's, NumPy's, torch's and the accelerator's RNGs.

    Returns:
        dict: ``python``, ``numpy``, ``torch`` and, where present, ``cuda`` /
        ``npu`` (one state per visible device).
    """
    np_state = np.random.get_state(legacy=False)
    state = dict(
        python=random.getstate(),
        numpy=dict(
            bit_generator=np_state['bit_generator'],
            key=torch.from_numpy(np_state['state']['key'].astype(np.int64)),
            pos=int(np_state['state']['pos']),
            has_gauss=int(np_state['has_gauss']),
            gauss=float(np_state['gauss'])),
        torch=torch.get_rng_state())
    if is_cuda_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    if is_npu_available():
        state['npu'] = torch.npu.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned.

    Accelerator states are restored when this process has the same kind of
    device (and as many of them as were saved); a checkpoint written on a GPU
    machine therefore resumes on a CPU one with only the host RNGs restored.

    Args:
        state (dict): A state from :func:`get_rng_state`, possibly moved to
            another device by ``torch.load(map_location=...)``.

    Raises:
        KeyError: ``state`` lacks one of the host generators.
    """
    missing = {'python', 'numpy', 'torch'} - set(state)
    if missing:
        raise KeyError(f'RNG state lacks {sorted(missing)}; '
                       f'it has {sorted(state)}')
    python_state = state['python']
    # torch.load may turn the tuple into a list; random.setstate wants tuples.
    random.setstate((python_state[0], tuple(python_state[1]),
                     python_state[2]))
    np_state = state['numpy']
    np.random.set_state(
        dict(
            bit_generator=np_state['bit_generator'],
            state=dict(
                key=np_state['key'].cpu().numpy().astype(np.uint32),
                pos=np_state['pos']),
            has_gauss=np_state['has_gauss'],
            gauss=np_state['gauss']))
    torch.set_rng_state(state['torch'].cpu())
    _set_device_states(state.get('cuda'), 'cuda', is_cuda_available())
    _set_device_states(state.get('npu'), 'npu', is_npu_available())


def _set_device_states(states: Optional[list], name: str,
                       available: bool) -> None:
    if not states or not available:
        return
    module = getattr(torch, name)
    if len(states) != module.device_count():
        return  # another device layout: its streams cannot be matched up
    module.set_rng_state_all([s.cpu() for s in states])
