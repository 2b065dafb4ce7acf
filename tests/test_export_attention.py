"""The banded Longformer formulation that ONNX export traces, against the dense oracle and the PyTorch
kernel (sliding_window), at lengths around its block and window boundaries; and its memory bound."""

import pytest
import torch

from longdoc.attention import GlobalTokens, LongformerPattern, dense_longformer_attention, longformer_attention
from longdoc.attention import banded


def make_case(t, window, h=2, d=8, seed=0):
    """Projections of 3 rows: full with globals (0, 5, t-1), padded with one global, padded without any."""
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(3, h, t, d, generator=gen) for _ in range(6)]
    is_token = torch.ones(3, t, dtype=torch.bool)
    is_token[1, max(1, (3 * t) // 5):] = False
    is_token[2, max(1, t // 3):] = False
    is_global = torch.zeros(3, t, dtype=torch.bool)
    is_global[0, [0, min(5, t - 1), t - 1]] = True
    is_global[1, 0] = True
    return tensors, is_token, is_global


def banded_attention(tensors, is_token, is_global, one_sided):
    """The export formulation of a whole Longformer attention: local rows, then global rows merged in."""
    q, k, v, qg, kg, vg = tensors
    indices, valid = banded.global_slots(is_global & is_token)
    is_global = is_global & is_token
    bias = banded.band_bias(is_token, is_global, valid, one_sided)
    out = banded.band_local_attention(q, k, v, bias, indices, one_sided)
    rows = banded.global_rows_attention(banded.gather_rows(qg, indices), kg, vg, is_token)
    return banded.merge_rows(out, rows, indices, valid, is_token, is_global)


@pytest.mark.parametrize("window", [2, 8, 12])
@pytest.mark.parametrize("t", [1, 2, 5, 8, 9, 16, 17, 45])
def test_banded_formulation_matches_oracle_and_kernel(window, t):
    tensors, is_token, is_global = make_case(t, window)
    pattern = LongformerPattern.build(window, is_token, is_global)
    ours = banded_attention(tensors, is_token, is_global, window // 2)
    oracle, _, _ = dense_longformer_attention(*tensors, pattern)
    torch.testing.assert_close(ours, oracle, atol=1e-5, rtol=0)
    q, k, v, qg, kg, vg = tensors
    q_global = banded.gather_rows(qg, pattern.globals.indices)
    with torch.no_grad():
        kernel, _, _ = longformer_attention(q, k, v, pattern, (q_global, kg, vg))
    torch.testing.assert_close(ours, kernel, atol=1e-5, rtol=0)


@pytest.mark.parametrize("t", [3, 16, 33, 70])
def test_blocks_smaller_than_the_window(t, monkeypatch):
    """Blocks of w/2 rows (b < w, as at w = 256 where b = 128): each block's keys are 2m + 1 = 5 key blocks."""
    monkeypatch.setattr(banded, "MAX_BLOCK_ROWS", 4)
    assert banded.block_rows(8) == 4
    tensors, is_token, is_global = make_case(t, 16)
    oracle, _, _ = dense_longformer_attention(*tensors, LongformerPattern.build(16, is_token, is_global))
    torch.testing.assert_close(banded_attention(tensors, is_token, is_global, 8), oracle, atol=1e-5, rtol=0)


def test_block_rows_divide_the_window():
    assert [banded.block_rows(w) for w in (1, 4, 6, 128, 256, 200, 97)] == [1, 4, 6, 128, 128, 100, 97]


def test_global_slots_are_the_kernels_and_never_empty():
    is_global = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    indices, valid = banded.global_slots(is_global)
    reference = GlobalTokens.from_mask(is_global)
    assert torch.equal(indices, reference.indices) and torch.equal(valid, reference.valid)
    indices, valid = banded.global_slots(torch.zeros(2, 4, dtype=torch.bool))
    assert indices.shape == (2, 1) and not valid.any()  # one masked slot: no tensor with an empty axis


def test_scores_grow_linearly_with_length():
    """The largest tensor of a layer is (B, H, T, G + b + 2w): doubling T doubles it."""
    sizes = []
    for t in (512, 1024):
        tensors, is_token, is_global = make_case(t, 64)
        largest = 0

        class Largest(torch.utils._python_dispatch.TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                nonlocal largest
                out = func(*args, **(kwargs or {}))
                for x in out if isinstance(out, (tuple, list)) else (out,):
                    if isinstance(x, torch.Tensor):
                        largest = max(largest, x.numel())
                return out

        with Largest():
            banded_attention(tensors, is_token, is_global, 32)
        sizes.append(largest)
    assert sizes[1] == 2 * sizes[0]
    assert sizes[0] <= 3 * 2 * 512 * (3 + 32 + 64)  # B H T (g + b + 2w): no T x T tensor
