# Copyright (c) soft_mm contributors. All rights reserved.
import torch

from soft_mm.ops import triton_device_types

# test_triton.py runs the Triton kernels on CUDA, or on CPU through Triton's
# interpreter, which must be switched on (TRITON_INTERPRET=1) before triton
# is imported. In a plain run on CPU it is not collected here:
# test_triton_interpreter.py runs it in a fresh interpreter with the variable
# set, so every kernel is still executed, once.
collect_ignore = ([] if torch.cuda.is_available()
                  or 'cpu' in triton_device_types() else ['test_triton.py'])
