# Copyright (c) soft_mm contributors. All rights reserved.
"""Compile soft_mm's Triton kernels for an NVIDIA GPU ahead of time, no GPU
needed: the strongest check of ``soft_mm/ops/triton`` a CPU-only machine
can make (the interpreter, which CI runs, accepts much the GPU compiler
rejects).

The launchers run on CPU tensors with the launch configuration they pick on
a GPU (``soft_mm.ops.triton.utils.AOT_SMS``); every kernel launch is caught
instead of run, specialised exactly as Triton's JIT would specialise it
(argument types, ints equal to 1, 16-byte alignment) and compiled to a
cubin for the target with Triton's compiler and ptxas. Forward and backward
of the attention op, the Gaussian kernel and the Newton inverse, for
m = 1, 7, 49, 64, 65, 128, 130, d = 32, 64 and float32 / float16 /
bfloat16 / float64 inputs (``--quick``: a subset). Kernel outputs are
garbage (nothing runs), which only the host code after a launch sees.

Per compiled kernel it reports shared memory (against the target's limit:
227 KiB per block on sm_90), registers and spills (``cuobjdump``), and
exits non-zero if any compile fails or exceeds the shared memory limit.

    python tools/gpu/compile_triton.py            # full grid, sm_90
    python tools/gpu/compile_triton.py --quick    # CI subset
    python tools/gpu/compile_triton.py --arch 80 --jobs 4
"""
import argparse
import itertools
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor

if os.environ.get('TRITON_INTERPRET', '0') not in ('', '0'):
    sys.exit('compile_triton.py: unset TRITON_INTERPRET (it compiles for '
             'the GPU, not the interpreter)')
import torch  # noqa: E402

#: Largest shared memory one block may use, by compute capability (opt-in
#: dynamic maximum, bytes).
MAX_SHARED = {80: 166912, 86: 101376, 89: 101376, 90: 232448, 100: 232448,
              120: 101376}
#: Set in the parent before the worker processes fork.
LAUNCHES = {}
_BACKEND = None


def ptxas_path() -> str:
    """ptxas that Triton's NVIDIA backend would use, or ''."""
    try:
        from triton import knobs
        return knobs.nvidia.ptxas.path or ''
    except Exception:  # noqa: BLE001  (an older or broken triton)
        return ''


def _tool(name: str) -> str:
    ptxas = ptxas_path()
    path = osp.join(osp.dirname(ptxas), name) if ptxas else ''
    return path if path and osp.exists(path) else ''


def _capture(arch: int):
    """Replace ``JITFunction.run`` by one that records the launch."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    global _BACKEND
    _BACKEND = make_backend(GPUTarget('cuda', arch, 32))
    binders = {}

    def run(self, *args, grid, warmup, **kwargs):
        binder = binders.get(self)
        if binder is None:
            binder = binders[self] = create_function_from_signature(
                self.signature, self.params, _BACKEND)
        bound, spec, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = self._pack_args(
            _BACKEND, kwargs, bound, spec, options)
        grid = grid(bound) if callable(grid) else grid
        grid = tuple(grid) + (1, ) * (3 - len(grid))
        if min(grid) < 1 or max(grid[1:]) > 65535 or grid[0] >= 2**31:
            raise AssertionError(f'{self.__name__}: launch grid {grid} out '
                                 'of CUDA limits (>= 1, y/z <= 65535)')
        key = (self.__name__, repr(sorted(signature.items())),
               repr(sorted(constexprs.items())),
               repr(sorted(attrs.items())), repr(options))
        if key not in LAUNCHES:
            consts = {self.arg_names[k[0]]: v for k, v in constexprs.items()}
            LAUNCHES[key] = dict(
                fn=self, signature=signature, constexprs=constexprs,
                attrs=attrs, options=options, name=self.__name__,
                ptrs=sorted({v[1:] for k, v in signature.items()
                             if v.startswith('*')}),
                meta={k: (v.name if isinstance(v, triton.language.dtype)
                          else v) for k, v in consts.items()
                      if k.isupper()},
                ones=[k for k in consts if not k.isupper()],
                num_warps=options.num_warps, num_stages=options.num_stages)
        return None

    JITFunction.run = run


DTYPES = dict(fp32=torch.float32, fp16=torch.float16, bf16=torch.bfloat16,
              fp64=torch.float64)


def _drive(quick: bool, dtypes=None, ms=None, ds=None) -> None:
    """Run every launcher (forward and backward) on CPU tensors."""
    from soft_mm.ops.triton import utils
    utils.AOT_SMS = 132  # H100 SXM / H200
    from soft_mm.ops.triton import attention, gaussian, newton

    dtypes = [DTYPES[t] for t in dtypes] if dtypes else (
        [torch.float32, torch.bfloat16] if quick else list(DTYPES.values()))
    ms = ms or ([7, 49, 128] if quick else [1, 7, 49, 64, 65, 128, 130])
    ds = ds or ([32] if quick else [32, 64, 256])
    n = 100
    for dtype, m, d in itertools.product(dtypes, ms, ds):
        g = torch.Generator().manual_seed(0)
        layouts = ['contiguous'] if quick else ['contiguous', 'heads-last']
        for layout, norm in itertools.product(layouts, (False, True)):
            bsz, heads = 2, 3

            def make(rows, cols):
                if layout == 'contiguous':
                    t = torch.randn(bsz, heads, rows, cols, generator=g)
                else:  # (B, L, h, d) viewed as (B, h, L, d)
                    t = torch.randn(bsz, rows, heads, cols,
                                    generator=g).transpose(1, 2)
                return (t * 0.3).to(dtype).requires_grad_()

            q, lm, v = make(n, d), make(m, d), make(n, d)
            out = attention.soft_attention_triton(q, lm, v, 20, norm)
            out.backward(torch.ones_like(out))
        x = torch.randn(6, n, d, dtype=dtype, requires_grad=True)
        y = torch.randn(6, m, d, dtype=dtype, requires_grad=True)
        gaussian.gaussian_kernel_triton(x, y).sum().backward()
        if d == ds[0]:
            mat = torch.randn(6, m, m).to(dtype)
            newton.newton_inverse_triton(mat)


def _resources(cubin: bytes):
    """(registers, spill stores, spill loads) from cuobjdump, or Nones."""
    tool = _tool('cuobjdump')
    if not tool:
        return None, None, None
    with tempfile.NamedTemporaryFile(suffix='.cubin') as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([tool, '-res-usage', f.name],
                              capture_output=True, text=True).stdout
    regs = re.search(r'REG:(\d+)', text)
    if regs is None:
        return None, None, None
    # Spills show up as local memory (STACK / LOCAL) in -res-usage.
    stack = re.search(r'STACK:(\d+)', text)
    local = re.search(r'LOCAL:(\d+)', text)
    return int(regs[1]), int(stack[1]) if stack else 0, \
        int(local[1]) if local else 0


def _compile(key, arch):
    import triton
    from triton.backends.compiler import GPUTarget
    launch = LAUNCHES[key]
    start = time.time()
    try:
        src = triton.compiler.ASTSource(
            fn=launch['fn'], signature=launch['signature'],
            constexprs=launch['constexprs'], attrs=launch['attrs'])
        compiled = triton.compile(src, target=GPUTarget('cuda', arch, 32),
                                  options=launch['options'].__dict__)
        regs, stack, local = _resources(compiled.asm['cubin'])
        return dict(ok=True, shared=compiled.metadata.shared, regs=regs,
                    stack=stack, local=local, secs=time.time() - start)
    except Exception as e:  # noqa: BLE001  (report every failure)
        lines = traceback.format_exception_only(type(e), e)
        return dict(ok=False, error=''.join(lines)[-1500:],
                    secs=time.time() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', type=int, default=90,
                        help='compute capability x 10 (default 90)')
    parser.add_argument('--quick', action='store_true',
                        help='fewer shapes and dtypes (for CI)')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--markdown', help='also write the table here')
    parser.add_argument('--dtypes', nargs='+', choices=list(DTYPES),
                        help='input dtypes (default: all; --quick: fp32 bf16)')
    parser.add_argument('--ms', nargs='+', type=int, help='landmark counts')
    parser.add_argument('--ds', nargs='+', type=int, help='head dims')
    args = parser.parse_args(argv)

    try:
        import triton
    except ImportError as e:
        print(f'compile_triton.py: triton not importable: {e}')
        return 2
    if not ptxas_path() or not osp.exists(ptxas_path()):
        print('compile_triton.py: ptxas not found (triton wheel without its '
              'NVIDIA backend binaries?)')
        return 2
    _capture(args.arch)
    _drive(args.quick, args.dtypes, args.ms, args.ds)
    keys = list(LAUNCHES)
    print(f'triton {triton.__version__}, sm_{args.arch}, {len(keys)} '
          f'distinct kernel specialisations, {args.jobs} jobs',
          flush=True)
    if args.jobs > 1:
        import multiprocessing
        ctx = multiprocessing.get_context('fork')
        with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            results = list(pool.map(_compile, keys, [args.arch] * len(keys)))
    else:
        results = [_compile(k, args.arch) for k in keys]

    limit = MAX_SHARED.get(args.arch)
    rows, failures = [], 0
    header = ('| kernel | pointers | constexprs | warps/stages | shared B | '
              'regs | spill (stack/local B) | s | status |')
    rows.append(header)
    rows.append('|' + '---|' * 9)
    order = sorted(range(len(keys)), key=lambda i: (
        LAUNCHES[keys[i]]['name'], str(LAUNCHES[keys[i]]['meta'])))
    for i in order:
        launch, res = LAUNCHES[keys[i]], results[i]
        meta = ' '.join(f'{k}={v}' for k, v in launch['meta'].items())
        if launch['ones']:
            meta += ' (=1: ' + ','.join(launch['ones']) + ')'
        if res['ok']:
            status = 'ok'
            if limit is not None and res['shared'] > limit:
                status = f'FAIL: shared {res["shared"]} > {limit}'
                failures += 1
            elif res['regs'] is not None and (res['stack'] or res['local']):
                status = 'ok (spills)'
            rows.append(
                f'| {launch["name"]} | {",".join(launch["ptrs"])} | {meta} | '
                f'{launch["num_warps"]}/{launch["num_stages"]} | '
                f'{res["shared"]} | {res["regs"]} | '
                f'{res["stack"]}/{res["local"]} | {res["secs"]:.1f} | '
                f'{status} |')
        else:
            failures += 1
            first = res['error'].strip().splitlines()[-1][:200]
            rows.append(f'| {launch["name"]} | {",".join(launch["ptrs"])} | '
                        f'{meta} | {launch["num_warps"]}/'
                        f'{launch["num_stages"]} | - | - | - | '
                        f'{res["secs"]:.1f} | FAIL: {first} |')
    table = '\n'.join(rows)
    print(table)
    for i in order:
        if not results[i]['ok']:
            print(f'\n== {LAUNCHES[keys[i]]["name"]} '
                  f'{LAUNCHES[keys[i]]["meta"]}\n{results[i]["error"]}')
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table + '\n')
    print(f'\n{len(keys) - failures}/{len(keys)} compiled within limits')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
