# Copyright (c) soft_mm contributors. All rights reserved.
"""Patch embedding and the MLP."""
import pytest
import torch

from soft_mm.models.utils import ConvPatchEmbed, Mlp


@pytest.mark.parametrize('size', [(224, 224), (33, 17), (1, 1)])
def test_stem_has_stride_4_and_rounds_up(size):
    stem = ConvPatchEmbed(3, 64, mid_channels=(32, 32), strides=(2, 1, 2))
    tokens, hw = stem(torch.randn(2, 3, *size))
    want = tuple(-(-s // 4) for s in size)
    assert hw == want and tokens.shape == (2, want[0] * want[1], 64)
    assert len(stem.projection) == 3


def test_downsampler_is_one_unit():
    down = ConvPatchEmbed(64, 128, bias=False)
    tokens, hw = down(torch.randn(1, 64, 7, 8))
    assert hw == (4, 4) and tokens.shape == (1, 16, 128)
    assert down.projection[0].conv.bias is None


def test_one_stride_per_unit():
    with pytest.raises(ValueError, match='one stride per unit'):
        ConvPatchEmbed(3, 64, mid_channels=(32, ), strides=(2, ))


def test_mlp():
    mlp = Mlp(16, 40)
    x = torch.randn(3, 5, 16)
    assert mlp(x).shape == x.shape
    torch.testing.assert_close(mlp(x), mlp.fc2(mlp.act(mlp.fc1(x))))
    assert mlp.fc1.out_features == 40


def _plain_and_mlp_grads(mlp, x, frozen=False):
    """Outputs and gradients of ``mlp`` and of its modules run plainly by
    autograd, on the same weights."""
    import copy
    mlp.zero_grad(set_to_none=True)
    plain = copy.deepcopy(mlp)
    for m in (mlp, plain):
        m.fc1.requires_grad_(not frozen)
    g = torch.randn(x.shape, dtype=x.dtype)
    runs = []
    for m, fwd in ((mlp, mlp), (plain, lambda t: plain.fc2(
            plain.act(plain.fc1(t))))):
        xi = x.detach().clone().requires_grad_()
        out = fwd(xi)
        out.backward(g)
        runs.append([out, xi.grad] + [p.grad for p in m.parameters()])
    return runs


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('approximate', ['tanh', 'none'])
@pytest.mark.parametrize('shape', [(2, 37, 24), (1, 1, 24), (5, 24)])
def test_mlp_recomputed_gelu_is_autograd_exactly(dtype, approximate, shape):
    """Training keeps the hidden pre-activation only and recomputes the
    GELU in backward: outputs and every gradient are bit-identical to
    autograd through the modules."""
    torch.manual_seed(0)
    mlp = Mlp(24, 96, dict(type='GELU', approximate=approximate)).to(dtype)
    x = torch.randn(shape, dtype=dtype)
    ours, plain = _plain_and_mlp_grads(mlp, x)
    assert ours[0].grad_fn.name().endswith('_LinearGeluLinearBackward')
    for a, b in zip(ours, plain):
        assert torch.equal(a, b)
    # A frozen fc1 gets no gradient, the rest the same.
    ours, plain = _plain_and_mlp_grads(mlp, x, frozen=True)
    assert ours[2] is None and ours[3] is None and ours[4] is not None
    for a, b in zip(ours, plain):
        assert (a is None and b is None) or torch.equal(a, b)


def test_mlp_keeps_one_hidden_tensor_for_backward():
    """What autograd keeps: the input and one (N, hidden) tensor, where the
    plain modules keep two."""
    mlp = Mlp(16, 64)
    x = torch.randn(1, 50, 16, requires_grad=True)

    def saved_hidden(fn):
        sizes = []

        def pack(t):
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x)
        return sum(1 for n in sizes if n == 50 * 64)

    assert saved_hidden(mlp) == 1
    assert saved_hidden(lambda t: mlp.fc2(mlp.act(mlp.fc1(t)))) == 2


def test_mlp_plain_path_for_other_activations_and_inference():
    x = torch.randn(2, 5, 16, requires_grad=True)
    relu = Mlp(16, 32, dict(type='ReLU'))
    assert relu(x).grad_fn.name() == 'ViewBackward0'  # fc2's, no function
    gelu = Mlp(16, 32)
    with torch.no_grad():
        assert gelu(x).grad_fn is None
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = gelu(x)
    assert out.dtype == torch.bfloat16
    assert '_LinearGeluLinear' not in out.grad_fn.name()


@pytest.mark.parametrize('loss', ['square', 'linear'])
def test_mlp_second_order_gradients_are_autograds(loss):
    """A gradient penalty through the FFN (create_graph=True) equals the
    plain modules' to rounding, also where the incoming gradient needs no
    grad (a linear loss: what once_differentiable would silently cut)."""
    torch.manual_seed(0)
    mlp = Mlp(8, 32).double()
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    results = []
    for fwd in (mlp, lambda t: mlp.fc2(mlp.act(mlp.fc1(t)))):
        mlp.zero_grad(set_to_none=True)
        x.grad = None
        out = fwd(x)
        out = out.square().sum() if loss == 'square' else out.sum()
        gx, = torch.autograd.grad(out, x, create_graph=True)
        gx.square().sum().backward()
        results.append([x.grad] + [p.grad for p in mlp.parameters()])
    assert results[0][0].abs().max() > 0
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradgradcheck(mlp, (x, ))
