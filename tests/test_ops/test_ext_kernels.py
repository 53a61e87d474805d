# Copyright (c) soft_mm contributors. All rights reserved.
"""The kernels of the compiled extension (``impl='ext'``) against the
pure-PyTorch reference.

One test body per check, parametrized over the devices the extension has
kernels for (mmcv style): ``cpu`` (both instruction sets where the kernel
tests care), ``cuda`` and ``npu`` when present. CPU tests need
``soft_mm._ext`` (``python setup.py build_ext --inplace``):
``test_extension_is_built`` fails if it is missing, the rest then skip.
Which backend ``impl`` picks, and argument errors: ``test_dispatch.py``.
"""
import os
from functools import partial

import pytest
import torch

from soft_mm.ops import (ext, gaussian_kernel, get_backend, newton_inverse,
                         reference, soft_attention, soft_attention_reference)

needs_ext = pytest.mark.skipif(
    not ext.ext_available(),
    reason=f"soft_mm._ext: {get_backend('ext').unavailable_reason('cpu')}")


def _has_kernels(device):
    if device == 'cuda' and not torch.cuda.is_available():
        return False
    return device in ext.ext_device_types()


def _device_param(device, value):
    """``pytest.param(value)`` that runs only where ``device``'s kernels are
    built (and, for cuda, a GPU is present)."""
    parts = value if isinstance(value, tuple) else (value, )
    return pytest.param(
        value,
        id='-'.join(p for p in parts if p),
        marks=pytest.mark.skipif(
            not _has_kernels(device),
            reason=f'requires soft_mm._ext with {device} kernels'))


#: Devices of the fused op, mmcv style.
DEVICES = [_device_param(d, d) for d in ('cpu', 'cuda', 'npu')]
#: Kernel tests: the CPU once per instruction set.
KERNEL_DEVICES = [_device_param('cpu', ('cpu', 'avx2')),
                  _device_param('cpu', ('cpu', 'base')),
                  _device_param('cuda', ('cuda', None)),
                  _device_param('npu', ('npu', None))]

# Relative tolerance (max abs error / max abs value) per compute dtype.
RTOL = {torch.float64: 1e-10, torch.float32: 2e-5}
# Extra float32 slack of the fused op: __expf (fast math) on CUDA is ~2 ulp.
FP32_SLACK = {'cpu': RTOL[torch.float32], 'cuda': 5 * RTOL[torch.float32],
              'npu': 5 * RTOL[torch.float32]}
HALF = [torch.float16, torch.bfloat16]

# (B, h, n, m, d): SOFT-tiny at 224 (stages 1-3), then awkward shapes, and
# a batch of 64 where a GPU makes it cheap.
TINY_SHAPES = [(1, 2, 3136, 49, 32), (1, 4, 784, 49, 32),
               (2, 10, 196, 49, 32)]
AWKWARD_SHAPES = [(2, 3, 57, 1, 32), (1, 2, 100, 37, 16), (2, 1, 64, 50, 8),
                  (1, 1, 1, 7, 32), (1, 1, 130, 64, 32), (1, 2, 70, 65, 4)]
BIG_SHAPES = [(64, 2, 3136, 49, 32)] if torch.cuda.is_available() else []


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() /
            b.double().abs().max().clamp_min(1e-30)).item()


def make_inputs(shape, dtype, seed=0, lm_scale=0.3, device='cpu'):
    """q, landmarks, v like SOFT's (q already scaled by d ** -0.25)."""
    b, h, n, m, d = shape
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=g, dtype=torch.float64) * 0.3
    lm = torch.randn(b, h, m, d, generator=g, dtype=torch.float64) * lm_scale
    v = torch.randn(b, h, n, d, generator=g, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in
            (q, lm, v)]


def assert_fused_matches_reference(fused, inputs, norm, fp32_slack):
    """The fused op (forward and all three gradients) against the reference.

    float64: equal to rounding (landmark gradients, which sum many terms, get
    10x). float32: no less accurate than the float32 reference, both measured
    against the float64 reference (some awkward shapes, e.g. 65 landmarks in
    d=4, are ill-conditioned), plus ``fp32_slack`` relative.
    """
    dtype = inputs[0].dtype
    got = run_with_grads(lambda *t: fused(*t, norm=norm), inputs)

    def ref(*t):
        return soft_attention_reference(*t, norm=norm)

    want = run_with_grads(ref, inputs)
    exact = run_with_grads(
        ref, [t.detach().double().requires_grad_() for t in inputs])
    for name, a, b, c in zip(['out', 'q', 'landmarks', 'v'], got, want,
                             exact):
        assert a.dtype == dtype and a.shape == b.shape, name
        if dtype == torch.float64:
            tol = RTOL[dtype] * (10 if name == 'landmarks' else 1)
            assert rel_err(a, b) < tol, (name, rel_err(a, b))
        else:
            err, ref_err = rel_err(a, c), rel_err(b, c)
            assert err < 2 * ref_err + fp32_slack, (name, err, ref_err)


def run_with_grads(fn, inputs, seed=1):
    out = fn(*inputs)
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(
        device=out.device, dtype=out.dtype)
    grads = torch.autograd.grad(out, inputs, grad_out)
    return [out.detach()] + [gr for gr in grads]


def poison_cuda_cache():
    """True fp32 GEMMs (no TF32) and a NaN-poisoned CUDA cache: outputs come
    from `empty`, so an element a kernel forgets to write reads as NaN and
    fails the comparison instead of passing as a stale value."""
    torch.cuda.empty_cache()
    # Blocks up to 1 GiB, freed into the caching allocator's large pool,
    # from which later allocations are split.
    free, _ = torch.cuda.mem_get_info()
    nbytes = min(1 << 30, free // 4)
    poison = torch.full((nbytes // 4, ), float('nan'), device='cuda')
    del poison
    small = [torch.full((1 << 16, ), float('nan'), device='cuda')
             for _ in range(64)]  # the small pool (< 1 MiB blocks) too
    del small


@pytest.fixture
def device(request, monkeypatch):
    """The device of a test parametrized with ``DEVICES``; on CUDA with
    TF32 off (restored afterwards) and the cache poisoned with NaN."""
    if request.param == 'cuda':
        monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
        monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
        poison_cuda_cache()
    return request.param


@pytest.fixture
def kernel_device(request, monkeypatch):
    """Like ``device``, for ``KERNEL_DEVICES``: the CPU once per instruction
    set this machine supports."""
    dev, isa = request.param
    if dev == 'cuda':
        monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
        poison_cuda_cache()
    if isa is None:
        yield dev
        return
    before = ext.get_cpu_isa()
    if not ext.set_cpu_isa(isa):
        pytest.skip(f'CPU lacks {isa}')
    yield dev
    ext.set_cpu_isa(before)


@needs_ext
def test_cpu_kernels_run_in_parallel():
    """at::parallel_for in the extension really forks: without the parallel
    backend's compile flag (-fopenmp) its pragma is silently ignored and
    every CPU kernel runs on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert ext.extension().parallel_for_threads(64) == 2
        assert ext.extension().parallel_for_threads(1) == 1
    finally:
        torch.set_num_threads(before)


def test_cuda_present_when_required():
    """tools/gpu/check.sh sets SOFT_MM_REQUIRE_CUDA=1: no silent skips."""
    if os.environ.get('SOFT_MM_REQUIRE_CUDA') == '1':
        assert torch.cuda.is_available(), 'no CUDA device'
        assert 'cuda' in ext.ext_device_types(), (
            'soft_mm._ext has no CUDA kernels: '
            f"{get_backend('ext').unavailable_reason('cuda')}")


def test_extension_is_built():
    assert ext.ext_available(), get_backend('ext').unavailable_reason('cpu')
    assert 'cpu' in ext.ext_device_types()


# ---------------------------------------------------------------------------
# Gaussian kernel and Newton inverse ops.


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


@pytest.mark.parametrize('kernel_device', KERNEL_DEVICES, indirect=True)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32] + HALF)
@pytest.mark.parametrize('shape', [(2, 300, 49, 32), (3, 17, 1, 5),
                                   (1, 1, 37, 32), (2, 64, 64, 3),
                                   (3, 777, 65, 32), (1, 70, 100, 32)])
def test_gaussian_kernel(kernel_device, dtype, shape):
    """Forward and both gradients on every input dtype, against the
    reference run on the same values in the compute dtype."""
    nb, n, m, d = shape
    acc = acc_dtype(dtype)
    g = torch.Generator().manual_seed(n + m)
    x = (torch.randn(nb, n, d, generator=g) * 0.3).to(kernel_device, dtype)
    y = (torch.randn(nb, m, d, generator=g) * 0.3).to(kernel_device, dtype)
    got = run_with_grads(partial(gaussian_kernel, impl='ext'),
                         [x.requires_grad_(), y.requires_grad_()])
    want = run_with_grads(reference.gaussian_kernel,
                          [x.detach().to(acc).requires_grad_(),
                           y.detach().to(acc).requires_grad_()])
    assert got[0].dtype == acc
    assert rel_err(got[0], want[0]) < RTOL[acc] * 5
    tol = RTOL[acc] * 50 if dtype not in HALF else 1e-2
    for a, b in zip(got[1:], want[1:]):
        assert a.dtype == dtype
        assert rel_err(a, b) < tol


@pytest.mark.parametrize('kernel_device', KERNEL_DEVICES, indirect=True)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_gaussian_kernel_propagates_nan(kernel_device, dtype):
    """A NaN input gives NaN, as in the reference: the clamp at 0 must not
    turn it into exp(0) = 1 and hide a diverged run behind finite values."""
    x = torch.randn(2, 20, 32, dtype=dtype) * 0.3
    y = torch.randn(2, 9, 32, dtype=dtype) * 0.3
    x[1, 5, 3] = float('nan')
    k = gaussian_kernel(x.to(kernel_device), y.to(kernel_device), impl='ext')
    assert torch.isnan(k[1, 5]).all()
    k[1, 5] = 0
    assert torch.isfinite(k).all()
    q, lm, v = make_inputs((1, 2, 30, 7, 32), dtype, device=kernel_device)
    q = q.detach().clone()
    q[0, 1, 4, 0] = float('nan')
    out = soft_attention(q, lm.detach(), v.detach(), impl='ext')
    assert torch.isnan(out[0, 1]).any() and torch.isfinite(out[0, 0]).all()


@pytest.mark.parametrize('kernel_device', KERNEL_DEVICES, indirect=True)
def test_gaussian_kernel_equal_points_clamped(kernel_device):
    """Identical points give ~1 and never more (exponent clamped at 0).

    The dot-product identity cancels |y|^2 terms: its error is ~eps |y|^2.
    """
    y = torch.randn(2, 9, 32) * 3
    k = gaussian_kernel(y.to(kernel_device), y.to(kernel_device), impl='ext')
    assert (k <= 1).all()
    atol = 1e-6 * y.pow(2).sum(-1).max().item()
    torch.testing.assert_close(
        k.diagonal(dim1=-2, dim2=-1).cpu(), torch.ones(2, 9), rtol=0,
        atol=atol)


@pytest.mark.parametrize('kernel_device', KERNEL_DEVICES, indirect=True)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32] + HALF)
@pytest.mark.parametrize('m', [1, 7, 37, 49, 50, 64, 65, 100])
def test_newton_inverse(kernel_device, dtype, m):
    """Small-matrix kernels up to m = 64, batched GEMMs beyond; forward and
    the analytic backward against the reference in the compute dtype."""
    acc = acc_dtype(dtype)
    g = torch.Generator().manual_seed(m)
    lm = torch.randn(3, m, 32, generator=g, dtype=torch.float64) * 0.3
    mat = reference.gaussian_kernel(lm, lm).to(kernel_device, dtype)
    got = run_with_grads(partial(newton_inverse, impl='ext'),
                         [mat.requires_grad_()])
    want = run_with_grads(reference.newton_inverse,
                          [mat.detach().to(acc).requires_grad_()])
    assert got[0].dtype == acc and got[1].dtype == dtype
    tol = RTOL[acc] * 50 if dtype not in HALF else 1e-2
    for a, b in zip(got, want):
        assert rel_err(a, b) < tol
    if dtype in HALF:
        return
    # Converged here, so it is the inverse of B + 0.01 I.
    eye = torch.eye(m, dtype=torch.float64, device=kernel_device)
    residual = got[0].double() @ (mat.detach().double() + 0.01 * eye) - eye
    assert residual.abs().max() < (1e-8 if dtype == torch.float64 else 1e-3)


@pytest.mark.parametrize('kernel_device', KERNEL_DEVICES, indirect=True)
def test_newton_inverse_fixed_steps_not_converged(kernel_device):
    """Ill-conditioned B: the 20-step iterate (not the inverse) is matched."""
    lm = torch.randn(2, 49, 32, dtype=torch.float64) * 0.02
    mat = reference.gaussian_kernel(lm, lm)
    got = newton_inverse(mat.to(kernel_device), impl='ext').cpu()
    want = reference.newton_iterate(mat)
    assert rel_err(got, want) < 1e-10
    exact = torch.linalg.inv(mat + 0.01 * torch.eye(49, dtype=mat.dtype))
    assert rel_err(got, exact) > 1e-3  # far from the exact inverse


@pytest.mark.parametrize('kernel_device', KERNEL_DEVICES, indirect=True)
@pytest.mark.parametrize('m', [20, 70])
def test_newton_constants_match_reference(kernel_device, m):
    """The C++ constants (kNewtonAlphaScale, kNewtonRidge) equal the
    reference's NEWTON_ALPHA_SCALE / NEWTON_RIDGE: at 0 steps the result is
    alpha * (B + ridge I) itself, at 1 step one polynomial of it. Both the
    small-matrix kernels (m = 20) and the GEMM path (m = 70) are checked."""
    lm = torch.randn(2, m, 8, dtype=torch.float64)
    mat = reference.gaussian_kernel(lm, lm).to(kernel_device)
    for iters, ridge in [(0, reference.NEWTON_RIDGE),
                         (1, reference.NEWTON_RIDGE), (7, 0.05)]:
        got = newton_inverse(mat, iters, ridge, impl='ext')
        want = reference.newton_iterate(mat, iters, ridge)
        assert rel_err(got, want) < 1e-12, (iters, ridge)
    # The default ridge of the op schema is the reference's, too.
    torch.testing.assert_close(
        torch.ops.soft_mm.newton_inverse(mat, 0),
        reference.newton_iterate(mat, 0), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------
# The fused op against soft_attention_reference.


@pytest.mark.parametrize('device', DEVICES, indirect=True)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('norm', [False, True])
@pytest.mark.parametrize('shape', TINY_SHAPES + AWKWARD_SHAPES + BIG_SHAPES)
def test_soft_attention_matches_reference(device, dtype, norm, shape):
    inputs = make_inputs(shape, dtype, seed=sum(shape), device=device)
    assert_fused_matches_reference(
        partial(soft_attention, impl='ext'), inputs, norm,
        FP32_SLACK[device])


@pytest.mark.parametrize('device', DEVICES, indirect=True)
def test_soft_attention_ill_conditioned_float64(device):
    """Clustered landmarks (20 steps far from converged), float64."""
    inputs = make_inputs((1, 2, 200, 49, 32), torch.float64, lm_scale=0.02,
                         device=device)
    for norm in (False, True):
        got = run_with_grads(
            lambda *t: soft_attention(*t, norm=norm, impl='ext'), inputs)
        want = run_with_grads(
            lambda *t: soft_attention_reference(*t, norm=norm), inputs)
        for a, b in zip(got, want):
            assert rel_err(a, b) < 1e-8


@pytest.mark.parametrize('device', DEVICES, indirect=True)
def test_soft_attention_non_contiguous(device):
    q, lm, v = make_inputs((2, 3, 40, 11, 16), torch.float64, device=device)
    # Views like the backbone's head split: (B, n, h, d).transpose(1, 2).
    qt = q.detach().transpose(1, 2).contiguous().transpose(1, 2)
    vt = v.detach()[..., ::2]
    lt = lm.detach().transpose(2, 3).contiguous().transpose(2, 3)
    inputs = [t.requires_grad_() for t in (qt, lt, vt)]
    assert not any(t.is_contiguous() for t in inputs)
    got = run_with_grads(lambda *t: soft_attention(*t, impl='ext'), inputs)
    want = run_with_grads(soft_attention_reference, inputs)
    for a, b in zip(got, want):
        assert rel_err(a, b) < 1e-10


@pytest.mark.parametrize('device', DEVICES, indirect=True)
def test_soft_attention_mixed_dtypes(device):
    """float32 q/landmarks with float64 v compute (and return) in float64."""
    q, lm, v = make_inputs((1, 2, 30, 9, 8), torch.float64, device=device)
    q32, lm32 = q.detach().float(), lm.detach().float()
    out = soft_attention(q32, lm32, v.detach(), impl='ext')
    assert out.dtype == torch.float64
    want = soft_attention_reference(q32.double(), lm32.double(), v.detach())
    assert rel_err(out, want) < 1e-10


@pytest.mark.parametrize('device', DEVICES, indirect=True)
@pytest.mark.parametrize('norm', [False, True])
def test_soft_attention_autocast(device, norm):
    """Under autocast (bf16 on CPU, fp16 elsewhere) the op takes the half
    inputs and computes in fp32.

    Tolerances: against the op on the same half values upcast to fp32 only
    the half rounding of the output (<= 2^-8) separates them, < 1e-2;
    against the fp32 model the projections' rounding enters too, < 5e-2.
    """
    amp = torch.bfloat16 if device == 'cpu' else torch.float16
    torch.manual_seed(0)
    b, h, n, m, d = 2, 2, 196, 49, 32
    x = torch.randn(b, n, h * d, device=device)
    proj = torch.nn.Linear(h * d, 2 * h * d).to(device)
    lm = torch.randn(b, h, m, d, device=device) * 0.3

    def attention(x, lm):
        q, v = proj(x).view(b, n, 2, h, d).permute(2, 0, 3, 1, 4)
        return soft_attention(q * 0.2, lm, v, norm=norm, impl='ext')

    with torch.autocast(device, dtype=amp):
        q, v = proj(x).view(b, n, 2, h, d).permute(2, 0, 3, 1, 4)
        assert q.dtype == amp
        out_half = soft_attention(q * 0.2, lm, v, norm=norm, impl='ext')
        xg = x.clone().requires_grad_()
        attention(xg, lm).float().square().sum().backward()
    assert out_half.dtype == amp
    assert torch.isfinite(out_half).all() and torch.isfinite(xg.grad).all()
    same_inputs = soft_attention((q * 0.2).float(), lm, v.float(), norm=norm,
                                 impl='ext')
    assert rel_err(out_half, same_inputs) < 1e-2
    assert rel_err(out_half, attention(x, lm)) < 5e-2


# ---------------------------------------------------------------------------
# gradcheck (float64, small, well conditioned so that 20 Newton steps have
# converged and the analytic inverse gradient is the true derivative).


def spread_inputs(norm_seed=0, b=1, h=2, n=6, m=4, d=5):
    g = torch.Generator().manual_seed(norm_seed)
    lm = torch.randn(b, h, m, d, generator=g, dtype=torch.float64) * 1.5
    # Queries near the landmarks, so the kernel entries are not tiny.
    idx = torch.randint(0, m, (n, ), generator=g)
    q = lm[:, :, idx] + 0.4 * torch.randn(
        b, h, n, d, generator=g, dtype=torch.float64)
    v = torch.randn(b, h, n, 3, generator=g, dtype=torch.float64)
    return [t.requires_grad_() for t in (q, lm, v)]


@needs_ext
@pytest.mark.parametrize('norm', [False, True])
def test_gradcheck_soft_attention(norm):
    inputs = spread_inputs()
    assert torch.autograd.gradcheck(
        lambda *t: soft_attention(*t, norm=norm, impl='ext'), inputs)


@needs_ext
def test_gradcheck_gaussian_and_newton():
    q, lm, _ = spread_inputs()
    assert torch.autograd.gradcheck(partial(gaussian_kernel, impl='ext'),
                                    [q[0].detach().requires_grad_(),
                                     lm[0].detach().requires_grad_()])
    mat = reference.gaussian_kernel(lm[0], lm[0]).detach().requires_grad_()
    assert torch.autograd.gradcheck(partial(newton_inverse, impl='ext'),
                                    [mat])


# ---------------------------------------------------------------------------
# The ATen-only path (Ascend kernels, CUDA fallback), checked on CPU.


@needs_ext
def test_aten_path_matches_reference():
    aten = ext.extension()
    x = torch.randn(2, 50, 16, dtype=torch.float64) * 0.3
    y = torch.randn(2, 37, 16, dtype=torch.float64) * 0.3
    k = aten.gaussian_kernel_aten(x, y)
    assert rel_err(k, reference.gaussian_kernel(x, y)) < 1e-12
    grad = torch.randn_like(k)
    gx, gy = aten.gaussian_kernel_backward_aten(grad, x, y, k)
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    wx, wy = torch.autograd.grad(reference.gaussian_kernel(xr, yr), (xr, yr),
                                 grad)
    assert rel_err(gx, wx) < 1e-12 and rel_err(gy, wy) < 1e-12
    mat = reference.gaussian_kernel(y, y)
    assert rel_err(aten.newton_inverse_aten(mat, 20, 0.01),
                   reference.newton_iterate(mat)) < 1e-12


# ---------------------------------------------------------------------------
# torch.compile and torch.export.


@pytest.mark.parametrize('device', DEVICES, indirect=True)
def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    inputs = make_inputs((1, 2, 64, 9, 8), torch.float32, device=device)

    def fn(q, lm, v):
        return soft_attention(q, lm, v, impl='ext').tanh() * 2

    # aot_eager traces the fake kernels and the registered backward (the
    # inductor backend adds only C++ codegen time on top of that).
    compiled = torch.compile(fn, fullgraph=True, backend='aot_eager')
    got = run_with_grads(compiled, inputs)
    want = run_with_grads(fn, inputs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


class TinyAttention(torch.nn.Module):

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qv = torch.nn.Linear(dim, 2 * dim)
        self.pool = torch.nn.AvgPool1d(4)

    def forward(self, x):
        b, n, c = x.shape
        q, v = self.qv(x).view(b, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        lm = self.pool(q.flatten(0, 1).transpose(1, 2)).transpose(1, 2)
        lm = lm.reshape(b, self.heads, -1, q.shape[-1])
        out = soft_attention(q, lm, v, impl='ext', norm=True)
        return out.transpose(1, 2).reshape(b, n, c)


@needs_ext
def test_torch_export():
    model = TinyAttention().eval()
    x = torch.randn(2, 32, 16)
    exported = torch.export.export(model, (x, ))
    graph = str(exported.graph)
    assert 'soft_mm.soft_attention_forward' in graph
    torch.testing.assert_close(exported.module()(x), model(x))


@needs_ext
def test_op_level_errors():
    """The C++ ops check their own arguments (``TORCH_CHECK``): callers of
    ``torch.ops.soft_mm`` that bypass the Python entry get errors, not
    undefined behaviour."""
    ops = torch.ops.soft_mm
    with pytest.raises(RuntimeError, match='must be 3-D'):
        ops.gaussian_kernel(torch.randn(4, 3), torch.randn(1, 4, 3))
    with pytest.raises(RuntimeError, match='share N and d'):
        ops.gaussian_kernel(torch.randn(1, 4, 3), torch.randn(1, 4, 2))
    with pytest.raises(RuntimeError, match='floating point'):
        ops.gaussian_kernel(torch.ones(1, 4, 3, dtype=torch.int32),
                            torch.randn(1, 4, 3))
    with pytest.raises(RuntimeError, match=r'\(N, m, m\)'):
        ops.newton_inverse(torch.randn(2, 3, 4), 20, 0.01)
    with pytest.raises(RuntimeError, match='iters must be >= 0'):
        ops.newton_inverse(torch.randn(2, 3, 3), -1, 0.01)
