"""The blocked Longformer kernel against the dense fp32 oracle."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from longdoc.attention import sliding_window
from longdoc.attention import (
    GlobalTokens,
    LongformerPattern,
    SlidingWindow,
    dense_longformer_attention,
    global_attention,
    global_attention_factored,
    longformer_attention,
)


def make_case(b=3, h=2, t=45, d=8, window=6, dtype=torch.float32, globals_per_row=((0, 5, 17), (0,), ()),
              pad_from=(None, 30, 40), seed=0):
    """Random projections with padding, a different number of global tokens per row (none in one)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(b, h, t, d, generator=gen).to(dtype).requires_grad_() for _ in range(6)]
    is_token = torch.ones(b, t, dtype=torch.bool)
    is_global = torch.zeros(b, t, dtype=torch.bool)
    for row in range(b):
        if pad_from[row] is not None:
            is_token[row, pad_from[row]:] = False
        is_global[row, list(globals_per_row[row])] = True
    return tensors, LongformerPattern.build(window, is_token, is_global)


def global_queries(q_global, pattern):
    idx = pattern.globals.indices[:, None, :, None].expand(-1, q_global.shape[1], -1, q_global.shape[3])
    return q_global.gather(2, idx)


def run_fast(tensors, pattern, **kw):
    q, k, v, qg, kg, vg = tensors
    return longformer_attention(q, k, v, pattern, (global_queries(qg, pattern), kg, vg), **kw)


@pytest.mark.parametrize("window,block", [(2, None), (6, None), (10, 4), (8, 3), (4, 16), (100, None), (512, None)])
@pytest.mark.parametrize("t", [45, 64, 1])
@pytest.mark.parametrize("inference_path", ["flash_cpu_views", "gathered_blocks"])
def test_forward_matches_oracle_every_path(window, block, t, inference_path, monkeypatch):
    if inference_path == "gathered_blocks":  # the path other devices take
        monkeypatch.setattr(sliding_window, "_FLASH_CPU", None)
    tensors, pattern = make_case(t=t, window=window, pad_from=(None, min(30, t), None),
                                 globals_per_row=((0,), (0,), ()) if t < 20 else ((0, 5, 17), (0,), ()))
    ref, ref_local, _ = dense_longformer_attention(*tensors, pattern)
    with torch.no_grad():  # fused inference path
        fast, _, _ = run_fast(tensors, pattern, block_size=block)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    blocked, _, _ = run_fast(tensors, pattern, block_size=block)  # autograd path
    torch.testing.assert_close(blocked, ref, atol=1e-5, rtol=0)


def test_gradients_match_oracle():
    tensors, pattern = make_case(window=8)
    grad = torch.randn(3, 2, 45, 8)
    ref, _, _ = dense_longformer_attention(*tensors, pattern)
    expected = torch.autograd.grad((ref * grad).sum(), tensors)
    out, _, _ = run_fast(tensors, pattern, block_size=4)
    got = torch.autograd.grad((out * grad).sum(), tensors)
    for name, e, g in zip(("q", "k", "v", "q_global", "k_global", "v_global"), expected, got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=0, msg=f"gradient of {name}")


def test_probabilities_match_oracle_band_layout():
    tensors, pattern = make_case(window=6)
    _, ref_local, ref_global = dense_longformer_attention(*tensors, pattern)
    _, local, global_ = run_fast(tensors, pattern, return_probs=True)
    w, t, g = 3, 45, pattern.globals.count
    for row in range(3):
        for i in range(t):
            if not pattern.is_token[row, i] or pattern.is_global[row, i]:
                assert local[row, :, i].abs().max() == 0  # filler rows are zero, as in transformers
                continue
            for j in range(-w, w + 1):
                if not 0 <= i + j < t:
                    continue
                # a global key is reported in the global columns, never in the band
                expected = 0 * ref_local[row, :, i, i + j] if pattern.is_global[row, i + j] else ref_local[row, :, i, i + j]
                torch.testing.assert_close(local[row, :, i, g + w + j], expected, atol=1e-6, rtol=0)
            for slot in range(g):
                expected = ref_local[row, :, i, pattern.globals.indices[row, slot]] if pattern.globals.valid[row, slot] else 0 * local[row, :, i, slot]
                torch.testing.assert_close(local[row, :, i, slot], expected, atol=1e-6, rtol=0)
    idx = pattern.globals.indices[:, None, :, None].expand(-1, 2, -1, t)
    rows = ref_global.gather(2, idx)  # (B, H, g, T): the oracle's rows of the global tokens
    valid = pattern.globals.valid[:, None, :, None]
    torch.testing.assert_close(global_ * valid, rows * valid, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_half_precision_close_to_fp32_oracle(dtype, tol):
    tensors, pattern = make_case(window=10, dtype=dtype)
    ref, _, _ = dense_longformer_attention(*[x.float() for x in tensors], pattern)
    with torch.no_grad():
        fast, _, _ = run_fast(tensors, pattern)
    assert fast.dtype == dtype
    torch.testing.assert_close(fast.float(), ref, atol=tol, rtol=0)
    out, _, _ = run_fast(tensors, pattern)
    out.float().sum().backward()
    assert all(x.grad is not None and torch.isfinite(x.grad.float()).all() for x in tensors)


def test_dropout_is_consistent_between_forward_and_backward():
    """gradcheck in float64 with the dropout RNG reseeded per call: backward regenerates the mask."""
    tensors, pattern = make_case(b=2, t=13, d=4, window=4, globals_per_row=((0, 6), (2,)), pad_from=(None, 10),
                                 dtype=torch.float64)

    def fn(q, k, v, qg, kg, vg):
        torch.manual_seed(1234)
        return run_fast((q, k, v, qg, kg, vg), pattern, dropout_p=0.3, training=True, block_size=4)[0]

    assert torch.autograd.gradcheck(fn, tuple(tensors), atol=1e-6)
    torch.manual_seed(0)
    a = run_fast(tensors, pattern, dropout_p=0.3, training=True)[0]
    b = run_fast(tensors, pattern, dropout_p=0.3, training=True)[0]
    assert not torch.equal(a, b)  # a new mask every call
    c = run_fast(tensors, pattern, dropout_p=0.3, training=False)[0]
    ref, _, _ = dense_longformer_attention(*tensors, pattern)
    torch.testing.assert_close(c, ref, atol=1e-6, rtol=0)  # eval mode ignores dropout (oracle is fp32)


def test_no_global_tokens_at_all():
    tensors, pattern = make_case(globals_per_row=((), (), ()))
    assert pattern.globals.count == 0
    ref, _, _ = dense_longformer_attention(*tensors, pattern)
    with torch.no_grad():
        out, _, glob = longformer_attention(*tensors[:3], pattern)
    assert glob is None
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_global_tokens_from_mask_keeps_order_and_pads():
    mask = torch.tensor([[0, 1, 0, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    g = GlobalTokens.from_mask(mask)
    assert g.indices.tolist() == [[1, 3, 4], [0, 0, 0], [0, 0, 0]]
    assert g.valid.tolist() == [[True, True, True], [True, False, False], [False, False, False]]
    assert torch.equal(g.to_mask(5), mask)


@pytest.mark.parametrize("window", [0, -2, 3, 2.0, True])
def test_bad_window_is_rejected(window):
    with pytest.raises(ValueError, match="window"):
        SlidingWindow(window)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for x in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(x, torch.Tensor):
                self.largest = max(self.largest, x.numel())
        return out


@pytest.mark.parametrize("grad", [False, True])
def test_memory_grows_linearly_with_length(grad):
    """No (T, T) tensor and no intermediate growing faster than T, forward and backward."""
    sizes = {}
    for t in (1024, 4096):
        tensors, pattern = make_case(b=1, h=2, t=t, d=16, window=64, globals_per_row=((0, 7),), pad_from=(None,))
        with torch.set_grad_enabled(grad), LargestTensor() as probe:
            out, _, _ = run_fast(tensors, pattern)
            if grad:
                out.sum().backward()
        sizes[t] = probe.largest
    assert sizes[4096] < 1024 * 4096  # far below one T x T matrix of the short input
    assert sizes[4096] <= 4.5 * sizes[1024]


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_factored_global_rows_equal_projected_ones(dropout_p):
    """Skipping the global key/value projections changes nothing but rounding, gradients included."""
    torch.manual_seed(0)
    b, h, t, d = 2, 3, 21, 4
    hidden = torch.randn(b, t, h * d, dtype=torch.float64, requires_grad=True)
    key, value = torch.nn.Linear(h * d, h * d).double(), torch.nn.Linear(h * d, h * d).double()
    is_token = torch.ones(b, t, dtype=torch.bool)
    is_token[1, 15:] = False
    is_global = torch.zeros(b, t, dtype=torch.bool)
    is_global[0, [0, 4]] = True
    is_global[1, 2] = True
    pattern = LongformerPattern.build(8, is_token, is_global)
    q_glob = torch.randn(b, h, pattern.globals.count, d, dtype=torch.float64, requires_grad=True)
    heads = lambda x: x.view(b, t, h, d).transpose(1, 2)

    def projected():
        torch.manual_seed(7)
        return global_attention(q_glob, heads(key(hidden)), heads(value(hidden)), pattern, dropout_p, True)

    def factored():
        torch.manual_seed(7)
        return global_attention_factored(q_glob, hidden, key.weight, key.bias, value.weight, value.bias,
                                         pattern, dropout_p, True)

    (out_a, probs_a), (out_b, probs_b) = projected(), factored()
    torch.testing.assert_close(out_b, out_a, atol=1e-10, rtol=0)
    torch.testing.assert_close(probs_b, probs_a, atol=1e-10, rtol=0)
    grad = torch.randn_like(out_a)
    params = [hidden, q_glob, key.weight, key.bias, value.weight, value.bias]
    for ga, gb in zip(torch.autograd.grad((out_a * grad).sum(), params), torch.autograd.grad((factored()[0] * grad).sum(), params)):
        torch.testing.assert_close(gb, ga, atol=1e-10, rtol=0)
