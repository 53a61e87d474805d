# Copyright (c) soft_mm contributors. All rights reserved.
"""The local (depthwise) convolution of SOFT attention and the extension's
CPU weight-gradient kernel, against PyTorch's own convolution."""
import pytest
import torch
import torch.nn.functional as F

from soft_mm.ops import depthwise_conv2d_nhwc, ext

needs_ext = pytest.mark.skipif(
    not ext.ext_available(), reason='soft_mm._ext not built')

# (B, H, W, C, k): SOFT's stage shapes scaled down, odd sides, a map
# smaller than the kernel, a single pixel, C not a multiple of 8 and
# kernels outside the kernel's range (5..15: mkldnn fallback).
SHAPES = [(2, 14, 14, 64, 9), (2, 7, 9, 16, 5), (3, 6, 4, 24, 15),
          (2, 3, 5, 16, 9), (1, 1, 1, 8, 7), (2, 5, 5, 12, 5),
          (1, 4, 6, 8, 17), (2, 8, 8, 16, 3), (2, 5, 7, 40, 11)]


def _torch_grads(x, weight, grad):
    """Output and gradients of the NCHW reference convolution."""
    x = x.detach().permute(0, 3, 1, 2).contiguous().requires_grad_()
    weight = weight.detach().clone().requires_grad_()
    k = weight.shape[-1]
    out = F.conv2d(x, weight, None, 1, k // 2, 1, x.shape[1])
    out.backward(grad.permute(0, 3, 1, 2))
    return out.permute(0, 2, 3, 1), x.grad.permute(0, 2, 3, 1), weight.grad


@pytest.fixture(params=['avx2', 'base'])
def cpu_isa(request):
    if not ext.ext_available():
        pytest.skip('soft_mm._ext not built')
    before = ext.get_cpu_isa()
    if not ext.set_cpu_isa(request.param):
        pytest.skip(f'CPU lacks {request.param}')
    yield request.param
    ext.set_cpu_isa(before)


@pytest.mark.parametrize('shape', SHAPES, ids=str)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_weight_grad_kernel_matches_mkldnn(cpu_isa, shape, dtype):
    B, H, W, C, k = shape
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(B, H, W, C, generator=gen, dtype=dtype)
    grad = torch.randn(B, H, W, C, generator=gen, dtype=dtype)
    out = torch.ops.soft_mm.depthwise_conv2d_weight_grad(x, grad, k)
    expected = ext.extension().depthwise_conv2d_weight_grad_aten(x, grad, k)
    assert out.shape == (C, k, k) and out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol * 10)


@needs_ext
def test_weight_grad_kernel_takes_strided_inputs():
    x = torch.randn(2, 16, 7, 9).permute(0, 2, 3, 1)  # (B, H, W, C) view
    grad = torch.randn(2, 7, 9, 16)[:, :, :, :]
    out = torch.ops.soft_mm.depthwise_conv2d_weight_grad(x, grad, 5)
    _, _, expected = _torch_grads(x, torch.zeros(16, 1, 5, 5), grad)
    torch.testing.assert_close(out, expected.view(16, 5, 5), rtol=1e-5,
                               atol=1e-4)


@pytest.mark.parametrize('shape', SHAPES, ids=str)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_depthwise_conv2d_nhwc_forward_backward(shape, dtype):
    B, H, W, C, k = shape
    gen = torch.Generator().manual_seed(7 + sum(shape))
    tokens = torch.randn(B, H * W, C, generator=gen, dtype=dtype)
    weight = torch.randn(C, 1, k, k, generator=gen, dtype=dtype)
    grad = torch.randn(B, H, W, C, generator=gen, dtype=dtype)
    x = tokens.clone().requires_grad_()
    w = weight.clone().requires_grad_()
    out = depthwise_conv2d_nhwc(x.view(B, H, W, C), w)
    out.backward(grad)
    ref_out, ref_gx, ref_gw = _torch_grads(tokens.view(B, H, W, C), weight,
                                           grad)
    tol = dict(rtol=1e-12, atol=1e-11) if dtype == torch.float64 else dict(
        rtol=2e-5, atol=2e-4)
    torch.testing.assert_close(out, ref_out, **tol)
    torch.testing.assert_close(x.grad.view(B, H, W, C), ref_gx, **tol)
    torch.testing.assert_close(w.grad, ref_gw, **tol)


@needs_ext
def test_depthwise_conv2d_nhwc_uses_the_kernel_when_training_on_cpu():
    x = torch.randn(1, 4, 4, 8, requires_grad=True)
    w = torch.randn(8, 1, 5, 5, requires_grad=True)

    def backward_of(*args):
        return type(depthwise_conv2d_nhwc(*args).grad_fn).__name__

    assert 'DepthwiseNHWC' in backward_of(x, w)
    # Everything else is PyTorch's own convolution and its autograd.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert backward_of(x, w) == 'PermuteBackward0'
    with torch.no_grad():
        assert depthwise_conv2d_nhwc(x, w).grad_fn is None
    assert depthwise_conv2d_nhwc(x.detach(), w.detach()).grad_fn is None


@needs_ext
def test_depthwise_conv2d_nhwc_gradcheck():
    x = torch.randn(1, 5, 6, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(depthwise_conv2d_nhwc, (x, w))


@pytest.mark.parametrize('weight_shape', [(8, 1, 4, 4), (6, 1, 3, 3),
                                          (8, 3, 3), (8, 2, 3, 3),
                                          (8, 1, 3, 5)])
def test_depthwise_conv2d_nhwc_rejects_bad_weights(weight_shape):
    with pytest.raises(ValueError, match='weight must be'):
        depthwise_conv2d_nhwc(torch.randn(1, 4, 4, 8),
                              torch.randn(*weight_shape))


def test_depthwise_conv2d_nhwc_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r'x must be \(B, H, W, C\)'):
        depthwise_conv2d_nhwc(torch.randn(4, 4, 8), torch.randn(8, 1, 3, 3))
    with pytest.raises(TypeError, match='must be Tensors'):
        depthwise_conv2d_nhwc([1.0], torch.randn(8, 1, 3, 3))


@needs_ext
def test_weight_grad_kernel_rejects_bad_inputs():
    op = torch.ops.soft_mm.depthwise_conv2d_weight_grad
    x = torch.randn(1, 4, 4, 8)
    with pytest.raises(RuntimeError, match='grad must have x.s shape'):
        op(x, torch.randn(1, 4, 4, 16), 3)
    with pytest.raises(RuntimeError, match='kernel_size must be odd'):
        op(x, x, 4)
    with pytest.raises(RuntimeError, match='floating point'):
        op(x.long(), x, 3)
