# Copyright (c) soft_mm contributors. All rights reserved.
"""The plumbing around mmengine's Runner that ``tools/train.py`` and
``tools/test.py`` share: reading configs, distributed set-up, the work-dir
lock, and the checks made before the Runner touches weights."""
from .checks import (check_resumable, check_same_layout, check_weights_fit,
                     resolve_resume, unwrap_model)
from .config import (ConfigError, default_work_dir, enable_preemption,
                     load_config, set_dataloader_defaults)
from .dist import (dist_backend_for_device, is_main_process_by_env,
                   setup_distributed)
from .work_dir import LOCK_NAME, WorkDirBusyError, WorkDirLock

__all__ = [
    'ConfigError', 'load_config', 'default_work_dir',
    'set_dataloader_defaults', 'enable_preemption', 'dist_backend_for_device',
    'setup_distributed', 'is_main_process_by_env', 'LOCK_NAME',
    'WorkDirLock', 'WorkDirBusyError', 'unwrap_model', 'check_weights_fit',
    'resolve_resume', 'check_resumable', 'check_same_layout'
]
