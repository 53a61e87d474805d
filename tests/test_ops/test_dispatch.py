# Copyright (c) soft_mm contributors. All rights reserved.
"""The public entries of the SOFT attention op: argument checks (once, for
every ``impl``), which backend ``impl`` picks, the deprecated device
spellings, and the fallbacks of ``impl='auto'``. The kernels themselves
are tested in ``test_ext_kernels.py`` and ``test_triton.py``."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from soft_mm.ops import (DEVICE_IMPLS, IMPLS, ext_device_types,
                         gaussian_kernel, get_backend, impl_unusable_reason,
                         newton_inverse, resolve_impl, select_backend,
                         soft_attention, soft_attention_reference)
from soft_mm.ops.checks import MAX_RELATIVE_RIDGE
from tool_utils import ROOT

needs_ext = pytest.mark.skipif(
    'cpu' not in ext_device_types(),
    reason=f"soft_mm._ext: {get_backend('ext').unavailable_reason('cpu')}")


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() /
            b.double().abs().max().clamp_min(1e-30)).item()


def make_inputs(shape, dtype=torch.float64, seed=0):
    """q, landmarks, v like SOFT's (q already scaled by d ** -0.25)."""
    b, h, n, m, d = shape
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=g, dtype=torch.float64) * 0.3
    lm = torch.randn(b, h, m, d, generator=g, dtype=torch.float64) * 0.3
    v = torch.randn(b, h, n, d, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (q, lm, v)]


# ---------------------------------------------------------------------------
# Arguments, checked at the public entry for every impl.


@pytest.mark.parametrize('impl', ['auto', 'reference', 'ext', 'triton'])
def test_input_errors(impl):
    """Bad inputs fail the same way whatever ``impl`` asks for, before any
    backend is chosen (even one that could not run here)."""
    q, lm, v = make_inputs((1, 2, 8, 3, 4), torch.float32)
    with pytest.raises(ValueError, match='must be 4-D'):
        soft_attention(q[0], lm, v, impl=impl)
    with pytest.raises(TypeError, match='floating point'):
        soft_attention(q.long(), lm, v, impl=impl)
    with pytest.raises(TypeError, match='must be a Tensor'):
        soft_attention(q.tolist(), lm, v, impl=impl)
    with pytest.raises(ValueError, match='one device'):
        soft_attention(q, lm.to('meta'), v, impl=impl)
    with pytest.raises(ValueError, match='share d'):
        soft_attention(q, lm[..., :3], v, impl=impl)
    with pytest.raises(ValueError, match='share n'):
        soft_attention(q, lm, v[:, :, :5], impl=impl)
    with pytest.raises(ValueError, match=r'share \(B, h\)'):
        soft_attention(q, lm[:, :1], v, impl=impl)
    with pytest.raises(ValueError, match='at least one landmark'):
        soft_attention(q, lm[:, :, :0], v, impl=impl)
    for iters in (-1, 2.5, True):
        with pytest.raises(ValueError, match='newton_iters'):
            soft_attention(q, lm, v, impl=impl, newton_iters=iters)
    # A string would be truthy: 'False' turned SOFT-Norm on.
    for norm in ('False', 1, None):
        with pytest.raises(TypeError, match='norm must be a bool'):
            soft_attention(q, lm, v, impl=impl, norm=norm)


def test_numpy_iteration_counts_are_ints():
    q, lm, v = make_inputs((1, 2, 8, 3, 4))
    torch.testing.assert_close(
        soft_attention(q, lm, v, newton_iters=np.int64(3), impl='reference'),
        soft_attention(q, lm, v, newton_iters=3, impl='reference'),
        rtol=0, atol=0)


@pytest.mark.parametrize('impl', ['reference', 'ext', 'triton'])
def test_piece_argument_errors(impl):
    mat = torch.eye(4, dtype=torch.float64).expand(2, 4, 4)
    with pytest.raises(ValueError, match='iters must be an int >= 0'):
        newton_inverse(mat, -1, impl=impl)
    with pytest.raises(ValueError, match='iters must be an int >= 0'):
        newton_inverse(mat, 2.5, impl=impl)
    with pytest.raises(ValueError, match=r'mat must be \(\.\.\., m, m\)'):
        newton_inverse(torch.ones(4), impl=impl)
    with pytest.raises(ValueError, match=r'mat must be \(\.\.\., m, m\)'):
        newton_inverse(torch.ones(2, 3, 4), impl=impl)
    with pytest.raises(TypeError, match='mat must be a floating point'):
        newton_inverse(torch.ones(2, 3, 3, dtype=torch.int64), impl=impl)
    for ridge in (-0.01, float('nan'), float('inf'), '0.01', True):
        with pytest.raises(ValueError, match='ridge must be a finite'):
            newton_inverse(mat, ridge=ridge, impl=impl)
    with pytest.raises(ValueError, match='row sum finite and > 0'):
        newton_inverse(torch.zeros(2, 3, 3), impl=impl)
    with pytest.raises(ValueError, match='x must be'):
        gaussian_kernel(torch.ones(4), torch.ones(2, 4), impl=impl)
    with pytest.raises(ValueError, match='share the leading dims and d'):
        gaussian_kernel(torch.ones(2, 3, 4), torch.ones(2, 3, 5), impl=impl)
    with pytest.raises(ValueError, match='one device'):
        gaussian_kernel(torch.ones(2, 3, 4), torch.ones(2, 3, 4,
                                                        device='meta'),
                        impl=impl)


def test_a_ridge_the_iteration_cannot_take_is_refused():
    """The step comes from mat, not mat + ridge I (the model's
    definition): past MAX_RELATIVE_RIDGE x the largest row sum the
    iteration can run off to inf, which the op refuses instead of
    returning."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 2, 4, generator=g, dtype=torch.float64)
    mat = gaussian_kernel(y, y)
    # Each matrix its own step: the bound is the smallest largest row sum.
    row_sum = mat.abs().sum(-1).amax(-1).amin().item()
    assert not get_backend('reference').newton_inverse(
        mat, 20, 0.5).isfinite().all()  # what the check prevents
    with pytest.raises(ValueError, match='ridge 0.5 is too large'):
        newton_inverse(mat, ridge=0.5)
    with pytest.raises(ValueError, match='too large'):
        newton_inverse(mat, ridge=1.2 * MAX_RELATIVE_RIDGE * row_sum)
    ridge = 0.999 * MAX_RELATIVE_RIDGE * row_sum
    inv = newton_inverse(mat, 60, ridge)
    eye = torch.eye(2, dtype=mat.dtype)
    torch.testing.assert_close(inv @ (mat + ridge * eye), eye.expand_as(mat))


def test_pieces_default_to_the_reference():
    x, y = torch.randn(2, 9, 4), torch.randn(2, 5, 4)
    assert torch.equal(gaussian_kernel(x, y),
                       get_backend('reference').gaussian_kernel(x, y))
    mat = gaussian_kernel(y, y)
    assert torch.equal(newton_inverse(mat),
                       get_backend('reference').newton_inverse(mat, 20, 0.01))


# ---------------------------------------------------------------------------
# What each impl runs.


def test_impls_name_backends():
    assert IMPLS == ('auto', 'ext', 'triton', 'reference')
    for name in IMPLS[1:]:
        assert get_backend(name).name == name
    with pytest.raises(ValueError, match='unknown SOFT attention backend'):
        get_backend('auto')


@needs_ext
def test_auto_uses_extension_without_warning():
    inputs = make_inputs((1, 2, 20, 5, 8))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = soft_attention(*inputs)
    assert resolve_impl('auto', 'cpu', torch.float64) == 'ext'
    assert rel_err(out, soft_attention_reference(*inputs)) < 1e-10


def test_auto_choice(monkeypatch):
    """'auto': Triton on CUDA once it is verified there (not for float64),
    else the extension's kernel; CPU tensors never go to Triton."""
    triton, ext = get_backend('triton'), get_backend('ext')
    monkeypatch.setattr(triton, 'unavailable_reason', lambda dev: None)
    monkeypatch.setattr(triton, 'verified', lambda dev: True)
    monkeypatch.setattr(ext, 'unavailable_reason', lambda dev: None)
    assert resolve_impl('auto', 'cuda', torch.float32) == 'triton'
    assert resolve_impl('auto', 'cuda', torch.float64) == 'ext'
    assert resolve_impl('auto', 'cpu', torch.float32) == 'ext'
    assert select_backend('ext', 'cuda', torch.float32) is ext
    monkeypatch.setattr(triton, 'verified', lambda dev: False)
    assert resolve_impl('auto', 'cuda', torch.float32) == 'ext'
    # No kernel anywhere: the Triton kernels still serve float64 on CUDA.
    monkeypatch.setattr(triton, 'verified', lambda dev: True)
    monkeypatch.setattr(ext, 'unavailable_reason', lambda dev: 'missing')
    assert resolve_impl('auto', 'cuda', torch.float64) == 'triton'


def test_auto_falls_back_with_one_warning(monkeypatch):
    """Without the extension 'auto' runs the reference, saying why once;
    a forced 'ext' raises."""
    ext = get_backend('ext')
    monkeypatch.setattr(ext, 'unavailable_reason',
                        lambda dev: 'ImportError: simulated (fallback test)')
    inputs = make_inputs((1, 2, 20, 5, 8))
    with pytest.warns(UserWarning, match='simulated') as record:
        out = soft_attention(*inputs)
        soft_attention(*inputs)
    assert len([w for w in record if 'soft_mm._ext' in str(w.message)]) == 1
    assert rel_err(out, soft_attention_reference(*inputs)) == 0
    with pytest.raises(RuntimeError, match="impl='ext'.*simulated"):
        soft_attention(*inputs, impl='ext')


def test_auto_falls_back_when_a_launch_fails(monkeypatch):
    """A backend that fails to compile at some shape (after 'auto' chose
    it) is disabled there and the next one runs; a forced impl raises."""
    triton = get_backend('triton')

    class FakeCompileError(Exception):
        pass

    def failing_kernel(*args):
        raise FakeCompileError('out of shared memory')

    disabled = []
    monkeypatch.setattr(triton, 'unavailable_reason', lambda dev: None)
    monkeypatch.setattr(triton, 'auto_ok', lambda dev: dev not in disabled)
    monkeypatch.setattr(triton, 'launch_errors', (FakeCompileError, ))
    monkeypatch.setattr(triton, 'attention', failing_kernel)
    monkeypatch.setattr(
        triton, 'disable',
        lambda dev, why: disabled.append(dev) or warnings.warn(why))
    q, lm, v = make_inputs((1, 2, 9, 3, 4), torch.float32)
    with pytest.warns(UserWarning, match='out of shared memory'):
        out = soft_attention(q, lm, v, impl='auto')
    assert disabled == ['cpu']
    assert rel_err(out, soft_attention_reference(q, lm, v)) < 1e-5
    disabled.clear()
    with pytest.raises(FakeCompileError):
        soft_attention(q, lm, v, impl='triton')
    assert disabled == []


def test_forced_impl_errors():
    q, lm, v = make_inputs((1, 2, 8, 3, 4), torch.float32)
    with pytest.raises(ValueError, match='unknown impl'):
        soft_attention(q, lm, v, impl='tpu')
    meta = [t.to('meta') for t in (q, lm, v)]
    with pytest.raises(RuntimeError, match="impl='ext'.*meta"):
        soft_attention(*meta, impl='ext')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        with pytest.raises(ValueError, match="impl='npu' needs inputs on npu"):
            soft_attention(*meta, impl='npu')


def test_triton_needs_cuda_or_interpreter(monkeypatch):
    triton = get_backend('triton')
    if not torch.cuda.is_available() and triton.import_error() is None:
        monkeypatch.setattr(triton, 'interpreting', lambda: False)
        q, lm, v = make_inputs((1, 2, 8, 3, 4), torch.float32)
        with pytest.raises(ValueError, match='TRITON_INTERPRET=1'):
            soft_attention(q, lm, v, impl='triton')
    monkeypatch.setattr(triton, 'import_error',
                        lambda: 'ImportError: simulated')
    with pytest.raises(RuntimeError, match='simulated'):
        resolve_impl('triton', 'cuda')
    assert 'Triton cannot run here' in impl_unusable_reason('triton')


# ---------------------------------------------------------------------------
# The deprecated device spellings.


SPELLINGS = """
import warnings
import torch
from soft_mm.ops import soft_attention
q, lm, v = (torch.randn(1, 2, n, 8, dtype=torch.float64) for n in (20, 5, 20))
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter('always')
    old = soft_attention(q, lm, v, impl='cpu')
    soft_attention(q, lm, v, impl='cpu')
messages = [str(w.message) for w in record
            if issubclass(w.category, DeprecationWarning)]
assert len(messages) == 1, messages  # once per spelling and process
assert "impl='cpu'" in messages[0] and "use 'ext'" in messages[0], messages
assert torch.equal(old, soft_attention(q, lm, v, impl='ext'))
try:
    soft_attention(q, lm, v, impl='cuda')
except ValueError as e:
    assert "impl='cuda' needs inputs on cuda" in str(e), e
else:
    raise AssertionError('cuda spelling accepted CPU inputs')
print('spellings OK')
"""


@needs_ext
def test_device_spellings_are_deprecated_aliases_of_ext():
    """In a fresh interpreter: the warning is once per process."""
    proc = subprocess.run([sys.executable, '-c', SPELLINGS], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert 'spellings OK' in proc.stdout


def test_impl_unusable_reason():
    assert DEVICE_IMPLS == ('cpu', 'cuda', 'npu')
    assert impl_unusable_reason('auto') is None
    assert impl_unusable_reason('reference') is None
    with pytest.raises(ValueError, match='unknown impl'):
        impl_unusable_reason('gpu')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        for device in DEVICE_IMPLS:
            usable = device in ext_device_types()
            assert (impl_unusable_reason(device) is None) == usable
    assert (impl_unusable_reason('ext') is None) == bool(ext_device_types())


@pytest.mark.parametrize('impl', [
    'reference', pytest.param('ext', marks=needs_ext)])
@pytest.mark.parametrize('loss', ['square', 'linear'])
def test_double_backward_is_refused(impl, loss):
    """The analytic Newton gradient and the kernels have no derivatives of
    their own: a double backward raises, naming the op, whether or not the
    incoming gradient needs grad (once_differentiable returned gradients
    without a graph for a linear loss: second-order terms silently 0)."""
    q, lm, v = (t.requires_grad_() for t in make_inputs((1, 2, 8, 3, 4)))
    out = soft_attention(q, lm, v, impl=impl)
    out = out.square().sum() if loss == 'square' else out.sum()
    with pytest.raises(RuntimeError, match='first-order gradients only'):
        torch.autograd.grad(out, (q, lm), create_graph=True)
    # First order is unaffected.
    out = soft_attention(q, lm, v, impl=impl).sum()
    assert all(g.abs().max() > 0 for g in torch.autograd.grad(out, (q, lm)))


@needs_ext
def test_local_conv_double_backward_is_refused():
    from soft_mm.ops import depthwise_conv2d_nhwc
    x = torch.randn(1, 5, 5, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    out = depthwise_conv2d_nhwc(x, w).sum()
    with pytest.raises(RuntimeError, match='first-order gradients only'):
        torch.autograd.grad(out, (x, w), create_graph=True)
