# Copyright (c) soft_mm contributors. All rights reserved.
"""Run every kernel of soft_mm._ext once, forward and backward, on small and
awkward shapes: a workload for ``compute-sanitizer`` (memcheck, racecheck),
which ``tools/gpu/check.sh`` runs it under.

It checks nothing itself beyond finite outputs (``tests/test_ops`` compares
with the reference); the sanitizer reports out-of-bounds or misaligned
accesses, shared-memory races and uninitialised reads. Shapes are small
because the sanitizer slows kernels by 10-100x.

    python tools/gpu/exercise_ops.py                 # CUDA
    python tools/gpu/exercise_ops.py --device cpu    # the same calls on CPU
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from soft_mm.ops import ext, soft_attention  # noqa: E402

#: (B, h, n, m, d): SOFT-tiny's stage-1 head, m = 1, n = 1, m not a multiple
#: of any tile, m at and just past the shared-memory Newton limit (64).
SHAPES = [(1, 2, 196, 49, 32), (2, 1, 37, 1, 8), (1, 3, 1, 5, 16),
          (1, 2, 130, 37, 24), (1, 1, 70, 64, 32), (1, 1, 70, 65, 32)]


def exercise(device: str, dtype: torch.dtype, norm: bool, shape) -> None:
    """One fused forward+backward and the separate pieces on fresh random
    inputs; raises if an output is not finite."""
    b, h, n, m, d = shape
    gen = torch.Generator(device).manual_seed(hash((shape, norm)) % 2**31)

    def rand(*size):
        return torch.randn(*size, device=device, generator=gen).to(dtype)

    q = (rand(b, h, n, d) * d**-0.25).requires_grad_()
    landmarks = (rand(b, h, m, d) * d**-0.25).requires_grad_()
    v = rand(b, h, n, d).requires_grad_()
    out = soft_attention(q, landmarks, v, norm=norm, impl=device)
    out.backward(torch.randn_like(out))
    kernel = ext.gaussian_kernel(q.detach().float(), landmarks.detach().float())
    inv = ext.newton_inverse(
        ext.gaussian_kernel(landmarks.detach().float(),
                            landmarks.detach().float()))
    if device == 'cuda':
        torch.cuda.synchronize()
    values = [out.detach(), q.grad, landmarks.grad, v.grad, kernel, inv]
    for name, t in zip(('out', 'dq', 'dlandmarks', 'dv', 'A', 'B^-1'), values):
        if not torch.isfinite(t).all():
            raise RuntimeError(f'{name} not finite for {shape}, {dtype}, '
                               f'norm={norm}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    args = parser.parse_args(argv)
    if args.device not in ext.ext_device_types():
        print(f'error: soft_mm._ext has no {args.device} kernels '
              f'(built for {ext.ext_device_types()})', file=sys.stderr)
        return 1
    dtypes = [torch.float32, torch.float64]
    if args.device == 'cuda':
        dtypes += [torch.float16, torch.bfloat16]
    runs = 0
    for dtype in dtypes:
        for norm in (False, True):
            for shape in SHAPES:
                exercise(args.device, dtype, norm, shape)
                runs += 1
    print(f'exercised {runs} forward+backward runs on {args.device}: '
          'all outputs finite')
    return 0


if __name__ == '__main__':
    sys.exit(main())
