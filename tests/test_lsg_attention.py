"""LSG attention kernels against the dense oracle, the sparse windows, lsh invariants and bad settings."""

import pytest
import torch

from longdoc.attention.lsg import lsg_attention, lsh_round, sparse_bos_pooling, sparse_lsh
from longdoc.attention.lsg_pattern import LSGGeometry, LSGPattern
from longdoc.attention.reference import dense_lsg_attention

DETERMINISTIC = ["norm", "pooling", "stride", "block_stride", "bos_pooling", "none"]


def _inputs(b, h, g, t, d, lengths, seed=0):
    torch.manual_seed(seed)
    q, k, v = (torch.randn(b, h, g + t, d) for _ in range(3))
    is_key = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    return q, k, v, is_key


@pytest.mark.parametrize("kind", DETERMINISTIC)
@pytest.mark.parametrize("bs,sbs,f,g", [(8, 8, 2, 1), (8, 4, 4, 3), (16, 8, 2, 2), (8, 16, 2, 1), (4, 4, 1, 1)])
def test_kernel_matches_dense_oracle(kind, bs, sbs, f, g):
    geo = LSGGeometry(bs, sbs, f, kind, g)
    t = 7 * bs  # several blocks; padding makes real lengths not multiples of the block
    q, k, v, is_key = _inputs(2, 4, g, t, 8, [t, t - bs - 3])
    pattern = LSGPattern(geo, is_key)
    out = lsg_attention(q, k, v, pattern)
    ref = dense_lsg_attention(q, k, v, pattern)
    real = torch.cat([torch.ones(2, g, dtype=torch.bool), is_key], dim=1)[:, None, :, None]
    torch.testing.assert_close(out * real, ref * real, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["norm", "pooling", "bos_pooling"])
def test_short_inputs_take_full_attention(kind):
    geo = LSGGeometry(8, 8, 2, kind, 2)
    q, k, v, is_key = _inputs(2, 2, 2, 16, 8, [16, 11])
    pattern = LSGPattern(geo, is_key)
    full = torch.cat([torch.ones(2, 2, dtype=torch.bool), is_key], 1)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=full[:, None, None, :])
    torch.testing.assert_close(lsg_attention(q, k, v, pattern), expected)


@pytest.mark.parametrize("dtype,padding_visible", [(torch.float32, True), (torch.bfloat16, True),
                                                    (torch.float16, False)])
def test_bos_pooling_windows_of_padding_only_as_lsg_converter(dtype, padding_visible):
    """lsg-converter masks a bos_pooling window only where the mean of its additive mask (0 or min) is exactly
    min: in fp32 and bf16 the sum of the minima overflows, so a window of padding only is visible, as the
    plain mean of its keys; in fp16 it stays masked."""
    geo = LSGGeometry(8, 8, 2, "bos_pooling", 1)
    q, k, v, is_key = (x.to(dtype) if x.is_floating_point() else x for x in _inputs(2, 2, 0, 48, 8, [48, 37]))
    k_c, v_c, valid = sparse_bos_pooling(q, k, v, is_key, geo)
    padding_only = ~is_key.view(2, 24, 2).any(dim=-1)  # row 1: windows 19-23; window 18 (tokens 36, 37) is mixed
    assert padding_only.sum() == 5
    assert bool((valid[:, 0][padding_only] == padding_visible).all()) and bool(valid[:, 0][~padding_only].all())
    for pooled, x in ((k_c, k), (v_c, v)):  # tolerance of the dtype's rounding
        torch.testing.assert_close(pooled[1, :, 19:], x[1, :, 38:].view(2, 5, 2, 8).mean(dim=-2))


def test_lsh_buckets_average_their_own_keys():
    geo = LSGGeometry(8, 8, 2, "lsh", 1, lsh_num_pre_rounds=0)
    _, k, v, is_key = _inputs(2, 2, 0, 32, 4, [32, 27])
    weight = is_key.float().view(2, 1, 4, 8)
    gen = torch.Generator().manual_seed(3)
    _, _, counts, buckets = lsh_round(k.view(2, 2, 4, 8, 4) * weight[..., None], v.view(2, 2, 4, 8, 4),
                                      weight.expand(-1, 2, -1, -1), 4, gen)
    k_c, v_c, valid = sparse_lsh(None, k, v, is_key, geo, torch.Generator().manual_seed(3))
    k_c = k_c.view(2, 2, 4, 4, 4)
    for i in range(2):
        for hh in range(2):
            for chunk in range(4):
                for bucket in range(4):
                    members = (buckets[i, hh, chunk] == bucket) & is_key[i, chunk * 8:(chunk + 1) * 8]
                    assert bool(valid.view(2, 2, 4, 4)[i, hh, chunk, bucket]) == bool(members.any())
                    if members.any():
                        expected = k[i, hh, chunk * 8:(chunk + 1) * 8][members].mean(0)
                        torch.testing.assert_close(k_c[i, hh, chunk, bucket], expected, atol=1e-5, rtol=1e-5)


def test_lsh_attention_is_finite_and_repeats_with_a_seed():
    geo = LSGGeometry(8, 8, 2, "lsh", 1)
    q, k, v, is_key = _inputs(2, 2, 1, 48, 8, [48, 30])
    pattern = LSGPattern(geo, is_key)
    torch.manual_seed(5)
    first = lsg_attention(q, k, v, pattern)
    torch.manual_seed(5)
    again = lsg_attention(q, k, v, pattern)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    torch.manual_seed(5)
    compressed = sparse_lsh(q[:, :, 1:], k[:, :, 1:], v[:, :, 1:], is_key, geo)
    torch.manual_seed(5)
    torch.testing.assert_close(first, dense_lsg_attention(q, k, v, pattern, compressed), atol=1e-5, rtol=0)


@pytest.mark.parametrize("settings,message", [
    (dict(block_size=10, sparsity_factor=4), "multiple of sparsity_factor"),
    (dict(sparsity_type="banana"), "choose one of norm, pooling"),
    (dict(block_size=0), "block_size must be a positive int"),
    (dict(num_global_tokens=600), "at most 512"),
    (dict(block_size=16, sparse_block_size=6, sparsity_factor=2), "must divide block_size"),
    (dict(block_size=6, sparse_block_size=6, sparsity_factor=2), r"must be even or 1.*sparsity_factor in \[1, 3, 6\]"),
])
def test_bad_geometry_is_explained(settings, message):
    with pytest.raises(ValueError, match=message):
        LSGGeometry(**settings)


def test_unpadded_length_needs_adaptive():
    geo = LSGGeometry(8, 8, 2, "norm", 1)
    assert geo.padded_length(30, adaptive=True) == 32
    assert geo.padded_length(15, adaptive=False) == 15  # short inputs attend densely
    with pytest.raises(ValueError, match="adaptive=True"):
        geo.padded_length(30, adaptive=False)


@pytest.mark.parametrize("kind,bs,sbs,f", [("pooling", 8, 8, 2), ("norm", 8, 4, 4), ("none", 8, 8, 2)])
@pytest.mark.parametrize("t", [16, 56])  # full-attention fallback, and blocks
def test_relative_position_bias_matches_dense_oracle(kind, bs, sbs, f, t):
    from longdoc.attention.lsg_bias import LSGPositionBias, block_offsets, fallback_offsets, with_global_zeros

    geo = LSGGeometry(bs, sbs, f, kind, 2)
    q, k, v, is_key = _inputs(2, 3, 2, t, 8, [t, t - 5])
    pattern = LSGPattern(geo, is_key)
    table = torch.randn(3, 2 * t + 1)  # a bias per head and offset
    relative_bias = lambda offsets: table[:, offsets + t]
    if t <= 2 * bs:
        bias = LSGPositionBias(full=with_global_zeros(relative_bias(fallback_offsets(t)), 2, rows=True))
    else:
        bias = LSGPositionBias(blocks=with_global_zeros(relative_bias(block_offsets(pattern)), 2, rows=False))
    out = lsg_attention(q, k, v, pattern, position_bias=bias)
    ref = dense_lsg_attention(q, k, v, pattern, relative_bias=relative_bias)
    real = torch.cat([torch.ones(2, 2, dtype=torch.bool), is_key], dim=1)[:, None, :, None]
    torch.testing.assert_close(out * real, ref * real, atol=1e-5, rtol=0)
