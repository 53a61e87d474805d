# Copyright (c) soft_mm contributors. All rights reserved.
"""Device-aware distributed set-up of ``tools/train.py`` and
``tools/test.py``."""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.device import is_cuda_available, is_npu_available


def dist_backend_for_device() -> str:
    """The collective backend of the accelerator here: NCCL, HCCL or gloo."""
    if is_npu_available():
        return 'hccl'
    if is_cuda_available():
        return 'nccl'
    return 'gloo'


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Initialise ``torch.distributed`` for launchers mmengine mishandles.

    mmengine 0.10's pytorch launcher always calls ``torch.cuda.set_device``
    and fails on a machine without a GPU, and it takes the backend from the
    config even when that device is absent. For the pytorch launcher we
    initialise the process group ourselves with the backend of the device
    that is there (the config's ``env_cfg.dist_cfg.backend`` is honoured when
    it fits); mmengine's Runner then finds it initialised and skips its own.
    Slurm and MPI launchers are left to mmengine.

    Args:
        cfg (Config): The run's config; ``env_cfg.dist_cfg.backend`` is
            updated to the backend actually used.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
    """
    if launcher != 'pytorch' or torch_dist.is_initialized():
        return
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    device_backend = dist_backend_for_device()
    wanted = dist_cfg.get('backend', device_backend)
    # NCCL/HCCL need their device; gloo works everywhere.
    backend = wanted if wanted in (device_backend, 'gloo') else device_backend
    dist_cfg['backend'] = backend
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    if backend == 'nccl':
        torch.cuda.set_device(local_rank)
    elif backend == 'hccl':
        import torch_npu  # noqa: F401
        torch.npu.set_device(local_rank)
    kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
    if 'timeout' in kwargs:
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch_dist.init_process_group(backend=backend, **kwargs)
    if device_backend == 'gloo':
        # mmengine passes device_ids=[LOCAL_RANK] to DDP, which a CPU module
        # rejects; CPU DDP needs device_ids=None.
        wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg['model_wrapper_cfg'] = wrapper


def is_main_process_by_env() -> bool:
    """Rank 0 of a launch (by the launcher's environment, before
    ``torch.distributed`` is initialised)."""
    return os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) == '0'
