# Copyright (c) soft_mm contributors. All rights reserved.
"""The pure-PyTorch SOFT core against explicit definitions (docs/design.md,
sections "Attention" and "Newton inverse and its gradient")."""
import pytest
import torch

from soft_mm.ops.reference import (gaussian_kernel, newton_inverse,
                                   newton_iterate, soft_attention_reference)


def random_spd(batch, m, cond=10., dtype=torch.float64):
    """Random SPD matrices with eigenvalues in [1/cond, 1]."""
    q, _ = torch.linalg.qr(torch.randn(batch, m, m, dtype=dtype))
    eig = torch.logspace(0, -torch.log10(torch.tensor(cond)).item(), m,
                         dtype=dtype)
    return q @ torch.diag_embed(eig.expand(batch, m)) @ q.transpose(-1, -2)


def explicit_newton(mat, iters=20):
    """The iteration written out one matrix at a time."""
    out = []
    for b in mat:
        m = b.shape[0]
        alpha = 0.9 * 2 / (b.sum(1).max()**2)
        p = b + 0.01 * torch.eye(m, dtype=b.dtype)
        v = alpha * p
        for _ in range(iters):
            v = 2 * v - v @ p @ v
        out.append(v)
    return torch.stack(out)


@pytest.mark.parametrize('m', [1, 7, 49])
def test_newton_matches_explicit_loop(m):
    mat = random_spd(5, m, cond=50.).abs()  # positive entries, like Bm
    mat = (mat + mat.transpose(-1, -2)) / 2
    torch.testing.assert_close(newton_iterate(mat), explicit_newton(mat))


def test_newton_is_fixed_20_steps_not_exact_inverse():
    # An ill-conditioned kernel matrix: 20 steps do not converge, and the
    # op must reproduce the iterate, not linalg.inv.
    x = torch.randn(1, 49, 4, dtype=torch.float64) * 0.05
    kernel = gaussian_kernel(x, x)
    inv20 = newton_iterate(kernel)
    exact = torch.linalg.inv(kernel + 0.01 * torch.eye(49, dtype=kernel.dtype))
    assert (inv20 - exact).abs().max() > 1e-3
    torch.testing.assert_close(inv20, explicit_newton(kernel))


def test_newton_converges_on_well_conditioned_input():
    mat = random_spd(3, 16, cond=5.)
    inv = newton_iterate(mat)
    eye = torch.eye(16, dtype=mat.dtype)
    torch.testing.assert_close(inv @ (mat + 0.01 * eye), eye.expand(3, -1, -1))


def test_newton_backward_is_the_analytic_formula():
    mat = random_spd(4, 9, cond=20.).requires_grad_()
    grad = torch.randn(4, 9, 9, dtype=torch.float64)
    inv = newton_inverse(mat)
    inv.backward(grad)
    v = inv.detach()
    expected = -v.transpose(-1, -2) @ grad @ v.transpose(-1, -2)
    torch.testing.assert_close(mat.grad, expected)


def test_newton_gradcheck_where_converged():
    # The implicit gradient is the true derivative once 20 steps converged.
    mat = random_spd(2, 6, cond=4.).requires_grad_()
    assert torch.autograd.gradcheck(newton_inverse, (mat, ), eps=1e-6,
                                    atol=1e-5)


def test_gaussian_kernel_matches_definition():
    x = torch.randn(2, 3, 11, 8, dtype=torch.float64)
    y = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    expected = torch.exp(-0.5 * torch.cdist(x, y).pow(2))
    torch.testing.assert_close(gaussian_kernel(x, y), expected)
    self_kernel = gaussian_kernel(y, y)
    torch.testing.assert_close(
        torch.diagonal(self_kernel, dim1=-2, dim2=-1),
        torch.ones(2, 3, 5, dtype=torch.float64))


@pytest.mark.parametrize('norm', [False, True])
def test_attention_matches_definition(norm):
    q = torch.randn(2, 2, 30, 8, dtype=torch.float64) * 0.5
    lm = torch.randn(2, 2, 6, 8, dtype=torch.float64)
    v = torch.randn(2, 2, 30, 8, dtype=torch.float64)
    a = torch.exp(-0.5 * torch.cdist(q, lm).pow(2))
    b = torch.exp(-0.5 * torch.cdist(lm, lm).pow(2))
    binv = explicit_newton(b.flatten(0, 1)).view_as(b)
    if norm:
        d = b.sum(-1).rsqrt()
        binv = d[..., :, None] * binv * d[..., None, :]
    expected = a @ binv @ a.transpose(-1, -2) @ v
    out = soft_attention_reference(q, lm, v, norm=norm)
    torch.testing.assert_close(out, expected)


def test_attention_autocast_keeps_kernels_fp32():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 64, 32)
    lm = torch.randn(1, 2, 4, 32)
    v = torch.randn(1, 2, 64, 32)
    ref = soft_attention_reference(q, lm, v)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = soft_attention_reference(q.bfloat16(), lm, v.bfloat16())
    assert torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.02, rel


@pytest.mark.parametrize('norm', [False, True])
@pytest.mark.parametrize('n,m', [(1, 1), (13, 4), (50, 7)])
def test_attention_rows_are_the_reference_attention(n, m, norm):
    """Rows of A B^-1 A^T: the reference applied to V = I gives the whole
    matrix, one column per token."""
    from soft_mm.ops.reference import soft_attention_rows
    torch.manual_seed(n)
    q = torch.randn(2, 3, n, 8, dtype=torch.float64)
    lm = torch.randn(2, 3, m, 8, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64).expand(2, 3, n, n)
    whole = soft_attention_reference(q, lm, eye, norm=norm)
    rows = torch.tensor([n - 1, 0, n // 2])
    torch.testing.assert_close(
        soft_attention_rows(q, lm, rows, norm=norm), whole[:, :, rows])


@pytest.mark.parametrize('rows,match', [
    ([5], r'\[0, 5\)'), ([-1], r'\[0, 5\)'), ([], 'non-empty'),
    ([[0]], '1-D'), ([0.5], 'integer')])
def test_attention_rows_reject_bad_rows(rows, match):
    from soft_mm.ops.reference import soft_attention_rows
    q, lm = torch.randn(1, 1, 5, 4), torch.randn(1, 1, 2, 4)
    with pytest.raises(ValueError, match=match):
        soft_attention_rows(q, lm, rows)
