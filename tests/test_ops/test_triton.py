# Copyright (c) soft_mm contributors. All rights reserved.
"""The Triton kernels (``impl='triton'``) against the float64 reference.

With a GPU the compiled kernels run on CUDA tensors. Without one they run on
CPU tensors through Triton's interpreter, which needs ``TRITON_INTERPRET=1``
before triton is imported (``import soft_mm`` already imports it, through
``torch._dynamo``), so in a plain ``pytest tests/test_ops`` this module is
not collected (``conftest.py``) and ``test_triton_interpreter.py`` runs it
in a subprocess with the variable set;
``TRITON_INTERPRET=1 pytest tests/test_ops/test_triton.py`` runs it directly.
Every kernel output is allocated NaN-filled (``SOFT_MM_TRITON_POISON``), so
an element a kernel fails to write fails the comparison.
"""

import warnings
from functools import partial

import pytest
import torch

from soft_mm.ops import (gaussian_kernel, get_backend, newton_inverse,
                         reference, soft_attention, soft_attention_reference)
from soft_mm.ops.triton import TritonBackend

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
TRITON = get_backend('triton')
if TRITON.import_error() is not None:
    pytest.skip(f'triton not importable: {TRITON.import_error()}',
                allow_module_level=True)
assert DEVICE in TRITON.device_types(), \
    'run with TRITON_INTERPRET=1 (conftest.py leaves this module out else)'
gaussian_kernel_triton = partial(gaussian_kernel, impl='triton')
newton_inverse_triton = partial(newton_inverse, impl='triton')

HALF = [torch.float16, torch.bfloat16]
# Relative error allowed against the float64 reference, per input dtype:
# float32 compute for all but float64; half types add the output rounding.
TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 4e-3,
       torch.bfloat16: 3e-2}


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """NaN-filled kernel outputs (the references run on the CPU)."""
    monkeypatch.setenv('SOFT_MM_TRITON_POISON', '1')


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() /
            b.double().abs().max().clamp_min(1e-30)).item()


def randn(*shape, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def grads_of(fn, inputs, seed=1):
    """Output and the gradients w.r.t. every input, for a fixed random
    output gradient."""
    inputs = [t.detach().requires_grad_() for t in inputs]
    out = fn(*inputs)
    grad = randn(*out.shape, seed=seed).to(out.device, out.dtype)
    return [out.detach()] + list(torch.autograd.grad(out, inputs, grad))


def assert_matches_float64(fn, ref_fn, inputs, tol, names):
    """``fn`` on ``inputs`` (their dtype, on DEVICE) against ``ref_fn`` on the
    same values in float64 on the CPU: forward and every gradient."""
    got = grads_of(fn, [t.to(DEVICE) for t in inputs])
    want = grads_of(ref_fn, [t.double().cpu() for t in inputs])
    for name, a, b, t in zip(names, got, want, [inputs[0]] + inputs):
        assert a.dtype in (t.dtype, torch.float32), (name, a.dtype)
        assert torch.isfinite(a).all(), f'{name}: not finite (unwritten?)'
        assert rel_err(a.cpu(), b) < tol, (name, rel_err(a.cpu(), b))


# ---------------------------------------------------------------------------
# Gaussian kernel.


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32] + HALF)
@pytest.mark.parametrize('shape', [(2, 70, 7, 32), (1, 1, 1, 8),
                                   (1, 130, 65, 16)])
def test_gaussian_kernel(dtype, shape):
    """Tiled over n and m (tails of both), fp32 accumulation for half."""
    nb, n, m, d = shape
    x = randn(nb, n, d, scale=0.3, seed=n).to(dtype)
    y = randn(nb, m, d, scale=0.3, seed=m).to(dtype)
    tol = TOL[dtype] if dtype == torch.float64 else 1e-5
    # Half outputs come back in float32 (the compute dtype), so only the
    # gradients (cast to the input dtype) see the half rounding.
    got = grads_of(gaussian_kernel_triton,
                   [x.to(DEVICE), y.to(DEVICE)])
    want = grads_of(reference.gaussian_kernel, [x.double(), y.double()])
    assert got[0].dtype == (torch.float64 if dtype == torch.float64 else
                            torch.float32)
    for name, a, b in zip(['K', 'dx', 'dy'], got, want):
        t = tol if name == 'K' else max(tol, TOL[dtype])
        assert rel_err(a.cpu(), b) < t, (name, rel_err(a.cpu(), b))
    assert got[1].dtype == dtype and got[2].dtype == dtype


def test_gaussian_kernel_nan_and_clamp():
    """A NaN input stays NaN (not exp(0) = 1); equal points give <= 1."""
    x = randn(2, 20, 32, scale=0.3).float()
    x[1, 5, 3] = float('nan')
    k = gaussian_kernel_triton(x.to(DEVICE), x[:, :9].to(DEVICE))
    assert torch.isnan(k[1, 5]).all()
    k[1, 5] = 0
    k[1, :, 5] = 0
    assert torch.isfinite(k).all() and (k <= 1).all()


# ---------------------------------------------------------------------------
# Newton inverse.


def landmark_kernel(b, m, d=32, scale=0.3, seed=0):
    lm = randn(b, m, d, scale=scale, seed=seed)
    return reference.gaussian_kernel(lm, lm)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('m', [1, 7, 64, 65])
def test_newton_inverse(dtype, m):
    """On chip up to m = 64, batched GEMMs at 65; backward -V^T G V^T."""
    mat = landmark_kernel(3, m, seed=m).to(dtype)
    assert_matches_float64(newton_inverse_triton,
                           reference.newton_inverse, [mat],
                           TOL[dtype] * (1 if dtype == torch.float64 else 10),
                           ['inv', 'dmat'])


@pytest.mark.parametrize('m', [49, 65])
def test_newton_constants_and_steps(m):
    """0 and 1 steps pin alpha's scale and the ridge to the reference's
    constants; 20 steps on clustered landmarks are far from the exact
    inverse and must still match the reference's iterate."""
    mat = landmark_kernel(2, m, scale=0.02, seed=3)
    for iters, ridge in [(0, 0.01), (1, 0.01), (1, 0.5), (20, 0.01)]:
        got = newton_inverse_triton(mat.to(DEVICE), iters, ridge)
        want = reference.newton_iterate(mat, iters, ridge)
        assert rel_err(got.cpu(), want) < 1e-10, (iters, ridge)
    exact = torch.linalg.inv(mat + 0.01 * torch.eye(m, dtype=mat.dtype))
    assert rel_err(got.cpu(), exact) > 1e-3


# ---------------------------------------------------------------------------
# Fused attention.

# (B, h, n, m, d): SOFT-tiny stages 1-3 at 224 (batch 1), then m = 1, 7,
# 64, 65 (Newton off chip), 130 (composed path), n = 1, B*h = 1, n not a
# multiple of any block.
TINY_SHAPES = [(1, 2, 3136, 49, 32), (1, 4, 784, 49, 32),
               (1, 10, 196, 49, 32)]
AWKWARD_SHAPES = [(2, 3, 57, 1, 32), (1, 2, 100, 7, 16), (1, 1, 130, 64, 32),
                  (1, 2, 70, 65, 8), (1, 1, 1, 7, 32), (1, 1, 40, 130, 8)]
NAMES = ['out', 'dq', 'dlandmarks', 'dv']


def attention_inputs(shape, lm_scale=0.3, seed=0):
    b, h, n, m, d = shape
    return [randn(b, h, n, d, scale=0.3, seed=seed),
            randn(b, h, m, d, scale=lm_scale, seed=seed + 1),
            randn(b, h, n, d, seed=seed + 2)]


def triton_attention(norm):
    return lambda *t: soft_attention(*t, norm=norm, impl='triton')


def reference_attention(norm):
    return lambda *t: soft_attention_reference(*t, norm=norm)


def assert_attention_matches(shape, dtype, norm, lm_scale=0.3):
    """Against float64; float32 also against what the float32 reference
    itself reaches (some awkward shapes are ill-conditioned)."""
    inputs = attention_inputs(shape, lm_scale, seed=sum(shape))
    inputs = [t.to(dtype) for t in inputs]
    got = grads_of(triton_attention(norm), [t.to(DEVICE) for t in inputs])
    exact = grads_of(reference_attention(norm), [t.double() for t in inputs])
    ref32 = (grads_of(reference_attention(norm), [t.float() for t in inputs])
             if dtype != torch.float64 else exact)
    for name, a, b, c in zip(NAMES, got, exact, ref32):
        assert a.dtype == dtype, (name, a.dtype)
        assert torch.isfinite(a).all(), f'{name}: not finite (unwritten?)'
        err = rel_err(a.cpu(), b)
        allowed = TOL[dtype] if dtype == torch.float64 else max(
            TOL[dtype], 2 * rel_err(c, b))
        # Landmark gradients sum O(n m) terms: 10x in float64.
        if dtype == torch.float64 and name == 'dlandmarks':
            allowed *= 10
        assert err < allowed, (name, err, allowed)


@pytest.mark.parametrize('norm', [False, True])
@pytest.mark.parametrize('shape', TINY_SHAPES + AWKWARD_SHAPES)
def test_attention_float32(shape, norm):
    assert_attention_matches(shape, torch.float32, norm)


@pytest.mark.parametrize('norm', [False, True])
@pytest.mark.parametrize('shape', [(1, 2, 100, 7, 16), (1, 2, 70, 65, 8)])
def test_attention_float64(shape, norm):
    assert_attention_matches(shape, torch.float64, norm)


@pytest.mark.parametrize('dtype', HALF)
@pytest.mark.parametrize('norm', [False, True])
def test_attention_half(dtype, norm):
    assert_attention_matches((1, 2, 100, 49, 32), dtype, norm)


def test_attention_ill_conditioned():
    """Clustered landmarks: 20 steps far from converged, float64."""
    for norm in (False, True):
        assert_attention_matches((1, 2, 60, 49, 32), torch.float64, norm,
                                 lm_scale=0.02)


def test_attention_non_contiguous():
    q, lm, v = attention_inputs((2, 3, 40, 11, 16))
    # Views like the backbone's head split: (B, n, h, d).transpose(1, 2).
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)
    lt = lm.transpose(2, 3).contiguous().transpose(2, 3)
    vt = torch.cat([v, v], -1)[..., ::2]
    inputs = [qt.float().to(DEVICE), lt.float().to(DEVICE), vt.to(DEVICE)]
    inputs = [t.transpose(2, 3).contiguous().transpose(2, 3)
              if t.is_contiguous() else t for t in inputs]
    assert not any(t.is_contiguous() for t in inputs)
    for norm in (False, True):
        got = grads_of(triton_attention(norm), inputs)
        want = grads_of(reference_attention(norm),
                        [t.double().cpu() for t in inputs])
        for name, a, b in zip(NAMES, got, want):
            assert rel_err(a.cpu(), b) < 1e-4, name


def test_attention_propagates_nan():
    q, lm, v = [t.float().to(DEVICE) for t in attention_inputs((1, 2, 30,
                                                                7, 32))]
    q[0, 1, 4, 0] = float('nan')
    out = soft_attention(q, lm, v, impl='triton')
    assert torch.isnan(out[0, 1]).any() and torch.isfinite(out[0, 0]).all()


def test_attention_autocast():
    """Under autocast the op takes the half inputs, computes in fp32."""
    amp = torch.bfloat16 if DEVICE == 'cpu' else torch.float16
    q, lm, v = [t.float().to(DEVICE) for t in attention_inputs((1, 2, 64, 9,
                                                                16))]
    with torch.autocast(DEVICE, dtype=amp):
        out = soft_attention(q.to(amp), lm, v.to(amp), impl='triton')
    assert out.dtype == amp
    want = soft_attention_reference(q.to(amp).double(), lm.double(),
                                    v.to(amp).double())
    assert rel_err(out.cpu(), want.cpu()) < TOL[amp]


def test_torch_compile_fullgraph():
    """The ops have fake kernels and registered backwards: dynamo traces
    them without breaking the graph."""
    torch._dynamo.reset()
    inputs = [t.float().to(DEVICE) for t in attention_inputs((1, 2, 64, 9,
                                                              8))]

    def fn(q, lm, v):
        return soft_attention(q, lm, v, impl='triton', norm=True).tanh() * 2

    compiled = torch.compile(fn, fullgraph=True, backend='aot_eager')
    for a, b in zip(grads_of(compiled, inputs), grads_of(fn, inputs)):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------
# Implementation choice and errors.


def test_head_dims_beyond_the_kernels_are_refused():
    q, lm, v = [t.float().to(DEVICE) for t in attention_inputs((1, 2, 8, 3,
                                                                4))]
    with pytest.raises(ValueError, match='head dims up to 256'):
        soft_attention(q, lm, v.new_zeros(1, 2, 8, 300), impl='triton')


def test_self_check(monkeypatch):
    """The self-check behind 'auto' passes from inside an autocast no_grad
    region (a TF32 / half reference or a disabled autograd must not fail
    it), and a kernel that raises makes it False with one warning."""
    backend = TritonBackend()  # its own, unchecked state
    amp = torch.bfloat16 if DEVICE == 'cpu' else torch.float16
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with torch.no_grad(), torch.autocast(DEVICE, dtype=amp):
            assert backend.verified(DEVICE)
    backend = TritonBackend()

    def broken(*args, **kwargs):
        raise RuntimeError('simulated compile failure')

    monkeypatch.setattr(backend, 'gaussian_kernel', broken)
    with pytest.warns(UserWarning, match='simulated compile failure'):
        assert not backend.verified(DEVICE)
    assert not backend.verified(DEVICE)  # cached, no second warning


def test_disable_warns_once():
    backend = TritonBackend()
    with pytest.warns(UserWarning, match='out of shared memory') as record:
        backend.disable(DEVICE, 'OutOfResources: out of shared memory')
        backend.disable(DEVICE, 'OutOfResources: out of shared memory')
    assert len(record) == 1
    assert not backend.verified(DEVICE) and not backend.auto_ok(DEVICE)
    assert isinstance(backend.launch_errors, tuple) and backend.launch_errors
