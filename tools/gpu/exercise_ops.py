# Copyright (c) soft_mm contributors. All rights reserved.
"""Run every kernel of soft_mm._ext (or the Triton kernels) once, forward
and backward, on small and awkward shapes: a workload for
``compute-sanitizer`` (memcheck, racecheck), which ``tools/gpu/check.sh``
runs it under.

It checks finite outputs and, with ``--check``, the fused op's forward
against the reference (``tests/test_ops`` compares everything in detail);
the sanitizer reports out-of-bounds or misaligned accesses, shared-memory
races and uninitialised reads. Shapes are small because the sanitizer slows
kernels by 10-100x.

    python tools/gpu/exercise_ops.py                       # C++ CUDA kernels
    python tools/gpu/exercise_ops.py --impl triton         # Triton kernels
    python tools/gpu/exercise_ops.py --device cpu          # C++ CPU kernels
    TRITON_INTERPRET=1 python tools/gpu/exercise_ops.py --device cpu \\
        --impl triton --check                              # Triton on CPU
"""
import argparse
import sys

import torch

from soft_mm.ops import (gaussian_kernel, get_backend, newton_inverse,
                         soft_attention, soft_attention_reference)

#: (B, h, n, m, d): SOFT-tiny's stage-1 head, m = 1, n = 1, m not a multiple
#: of any tile, m at and just past the on-chip Newton limit (64).
SHAPES = [(1, 2, 196, 49, 32), (2, 1, 37, 1, 8), (1, 3, 1, 5, 16),
          (1, 2, 130, 37, 24), (1, 1, 70, 64, 32), (1, 1, 70, 65, 32)]


def exercise(device: str, impl: str, dtype: torch.dtype, norm: bool, shape,
             check: bool = False) -> None:
    """One fused forward+backward and the separate pieces on fresh random
    inputs; raises if an output is not finite (or, with ``check``, if the
    forward is off the float64 reference)."""
    b, h, n, m, d = shape
    gen = torch.Generator(device).manual_seed(hash((shape, norm)) % 2**31)

    def rand(*size):
        return torch.randn(*size, device=device, generator=gen).to(dtype)

    q = (rand(b, h, n, d) * d**-0.25).requires_grad_()
    landmarks = (rand(b, h, m, d) * d**-0.25).requires_grad_()
    v = rand(b, h, n, d).requires_grad_()
    out = soft_attention(q, landmarks, v, norm=norm, impl=impl)
    out.backward(torch.randn_like(out))
    lm32 = landmarks.detach().float()
    kernel = gaussian_kernel(q.detach().float(), lm32, impl=impl)
    inv = newton_inverse(gaussian_kernel(lm32, lm32, impl=impl), impl=impl)
    if device == 'cuda':
        torch.cuda.synchronize()
    values = [out.detach(), q.grad, landmarks.grad, v.grad, kernel, inv]
    for name, t in zip(('out', 'dq', 'dlandmarks', 'dv', 'A', 'B^-1'), values):
        if not torch.isfinite(t).all():
            raise RuntimeError(f'{name} not finite for {shape}, {dtype}, '
                               f'norm={norm}, impl={impl}')
    if check:
        want = soft_attention_reference(
            *(t.detach().double() for t in (q, landmarks, v)), norm=norm)
        err = ((out.detach().double() - want).abs().max() /
               want.abs().max().clamp_min(1e-30)).item()
        tol = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
        if err > tol:
            raise RuntimeError(f'out off the reference by {err:.2e} for '
                               f'{shape}, {dtype}, norm={norm}, impl={impl}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument('--impl', default='ext', choices=['ext', 'triton'],
                        help="the C++ kernels of soft_mm._ext or Triton's")
    parser.add_argument('--check', action='store_true',
                        help='also compare the forward with the reference')
    args = parser.parse_args(argv)
    try:
        get_backend(args.impl).require(args.device)
    except (RuntimeError, ValueError) as e:
        print(f'error: the {args.impl} kernels cannot run on {args.device}: '
              f'{e}', file=sys.stderr)
        return 1
    dtypes = [torch.float32]
    if args.impl == 'ext' or args.device == 'cuda':
        dtypes.append(torch.float64)  # (slow under the interpreter)
    if args.device == 'cuda':
        dtypes += [torch.float16, torch.bfloat16]
    runs = 0
    for dtype in dtypes:
        for norm in (False, True):
            for shape in SHAPES:
                exercise(args.device, args.impl, dtype, norm, shape,
                         args.check)
                runs += 1
    print(f'exercised {runs} forward+backward runs of the {args.impl} '
          f'kernels on {args.device}: all outputs finite'
          + (', forward matches the reference' if args.check else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
