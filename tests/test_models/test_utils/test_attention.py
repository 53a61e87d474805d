# Copyright (c) soft_mm contributors. All rights reserved.
"""The attention layers: SOFT attention (landmarks, the local conv, the
core through soft_mm.ops) and the class-token stage's softmax attention."""
import re
import warnings

import pytest
import torch
import torch.nn.functional as F

from soft_mm.models.utils import ClsAttention, SoftAttention
from soft_mm.ops import ext_device_types, soft_attention_reference


@pytest.mark.parametrize('build,error,key', [
    (lambda: SoftAttention(64, 2, sr_ratio=0, local_kernel=3), ValueError,
     'sr_ratio'),
    (lambda: SoftAttention(64, 2, sr_ratio=2, local_kernel=4), ValueError,
     'local_kernel'),
    (lambda: SoftAttention(64, 3, sr_ratio=2, local_kernel=3), ValueError,
     'num_heads'),
    (lambda: SoftAttention(64, 2, 2, 3, landmark_grid=-2), ValueError,
     'landmark_grid'),
    (lambda: SoftAttention(64, 2, 2, 3, attn_impl='gpu'), ValueError,
     'attn_impl'),
    (lambda: SoftAttention(64, 2, 2, 3, newton_iters=-1), ValueError,
     'newton_iters'),
    (lambda: SoftAttention(64, 2, 2, 3, attn_norm=1), TypeError,
     'attn_norm'),
    (lambda: ClsAttention(64, 0), ValueError, 'num_heads'),
    (lambda: ClsAttention(64, 5), ValueError, 'num_heads'),
])
def test_bad_arguments_name_the_key(build, error, key):
    with pytest.raises(error, match=re.escape(key)):
        build()


def test_landmark_grid_bounds_landmarks():
    attn = SoftAttention(64, 2, sr_ratio=2, local_kernel=3, landmark_grid=7)
    q = torch.randn(1, 2, 50 * 40, 32)
    assert attn.sample_landmarks(q, (50, 40)).shape == (1, 2, 49, 32)
    # At or below grid * sr the bounded mode is the official one.
    official = SoftAttention(64, 2, sr_ratio=2, local_kernel=3)
    official.load_state_dict(attn.state_dict())
    q = torch.randn(1, 2, 14 * 14, 32)
    torch.testing.assert_close(
        attn.sample_landmarks(q, (14, 14)),
        official.sample_landmarks(q, (14, 14)))
    assert official.sample_landmarks(
        torch.randn(1, 2, 50 * 40, 32), (50, 40)).shape[2] == 25 * 20


def test_forward_is_the_reference_composition():
    """Output = proj(SOFT core of (q, landmarks, v) + local conv of v)."""
    torch.manual_seed(0)
    attn = SoftAttention(64, 2, sr_ratio=2, local_kernel=3,
                         attn_impl='reference').double()
    H, W = 6, 5
    x = torch.randn(2, H * W, 64, dtype=torch.float64)
    q = attn.q(x).view(2, H * W, 2, 32).transpose(1, 2) * 32**-0.25
    v_tokens = attn.v(x)
    v = v_tokens.view(2, H * W, 2, 32).transpose(1, 2)
    core = soft_attention_reference(q, attn.sample_landmarks(q, (H, W)), v)
    # The local conv: one k x k filter per head, shared by its d channels:
    # each channel j of head i is its own (H, W) map through filter i.
    v_maps = v.reshape(2, 2, H, W, 32).permute(0, 4, 1, 2, 3)  # B,d,h,H,W
    local = F.conv2d(v_maps.reshape(2 * 32, 2, H, W),
                     attn.local_conv.weight, padding=1, groups=2)
    local = local.view(2, 32, 2, H * W).permute(0, 3, 2, 1)  # B, N, h, d
    want = attn.proj((core.transpose(1, 2) + local).reshape(2, H * W, 64))
    torch.testing.assert_close(attn(x, (H, W)), want)


def test_backward_keeps_the_values_once():
    """The kernels' core and the local conv both need the values in the
    backward pass: one tensor holds them for both, not a copy per consumer
    (the reference, composed of PyTorch ops, copies inside ``matmul``)."""
    if 'cpu' not in ext_device_types():
        pytest.skip('soft_mm._ext not built')
    torch.manual_seed(0)
    attn = SoftAttention(64, 2, sr_ratio=2, local_kernel=3, attn_impl='ext')
    x = torch.randn(2, 6 * 5, 64)
    v_tokens = attn.v(x).detach()
    holders = set()

    def pack(t):
        # The values as the core takes them (B, h, N, d), or as the conv
        # does (B, H, W, C).
        if t.shape == (2, 2, 30, 32):
            tokens = t.detach().transpose(1, 2).reshape(v_tokens.shape)
        elif t.numel() == v_tokens.numel():
            tokens = t.detach().reshape(v_tokens.shape)
        else:
            return t
        if torch.equal(tokens, v_tokens):
            holders.add(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = attn(x, (6, 5))
    assert len(holders) == 1, f'the values are kept {len(holders)} times'
    out.sum().backward()  # the saved view still gives the gradients
    assert attn.v.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('impl', ['ext', 'cpu'])
def test_kernel_impls_build_where_they_exist(impl):
    if 'cpu' not in ext_device_types():
        pytest.skip('soft_mm._ext not built')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        attn = SoftAttention(64, 2, 2, 3, attn_impl=impl)
    assert attn.attn_impl == impl


def test_cls_attention_is_softmax_attention():
    torch.manual_seed(0)
    attn = ClsAttention(32, 4).double()
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    q = attn.q(x).view(2, 7, 4, 8).transpose(1, 2)
    k, v = attn.kv(x).view(2, 7, 2, 4, 8).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-1, -2) * 8**-0.5).softmax(-1)
    want = attn.proj((weights @ v).transpose(1, 2).reshape(2, 7, 32))
    torch.testing.assert_close(attn(x), want)


@pytest.mark.parametrize('grid', [None, 3, (2, 5)])
def test_landmark_count_is_what_sampling_gives(grid):
    attn = SoftAttention(64, 2, sr_ratio=4, local_kernel=3,
                         landmark_grid=grid)
    for hw in [(1, 1), (3, 9), (16, 16), (17, 33), (40, 12)]:
        q = torch.randn(1, 2, hw[0] * hw[1], 32)
        assert attn.landmark_count(hw) == attn.sample_landmarks(
            q, hw).shape[2], hw
    newton, rest = attn.newton_macs((16, 16))
    m = attn.landmark_count((16, 16))
    assert newton == 2 * 2 * 20 * m**3
    assert rest == 3 * 256 * 64 * (64 + m)


@pytest.mark.parametrize('norm', [False, True])
@pytest.mark.parametrize('hw_shape,sr', [((6, 5), 2), ((3, 7), 4),
                                         ((1, 1), 1)])
def test_attention_rows_give_the_layer_output(norm, hw_shape, sr):
    """Every row of A B^-1 A^T, applied to V, plus the local conv and the
    projection, is the layer's output: the rows are its attention."""
    torch.manual_seed(0)
    attn = SoftAttention(64, 2, sr_ratio=sr, local_kernel=3, attn_norm=norm,
                         attn_impl='reference').double()
    n = hw_shape[0] * hw_shape[1]
    x = torch.randn(2, n, 64, dtype=torch.float64)
    weights = attn.attention_rows(x, hw_shape, range(n))
    assert weights.shape == (2, 2, n, n)
    v_tokens = attn.v(x)
    v = v_tokens.view(2, n, 2, 32).transpose(1, 2)
    mixed = (weights @ v).transpose(1, 2).reshape(2, n, 64)
    expected = attn.proj(mixed + attn.local_enhance(v_tokens, hw_shape))
    torch.testing.assert_close(attn(x, hw_shape), expected)
    # A subset of rows is those rows.
    torch.testing.assert_close(
        attn.attention_rows(x, hw_shape, [n - 1, 0]),
        weights[:, :, [n - 1, 0]])
