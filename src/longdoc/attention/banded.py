"""Longformer attention as a graph of fixed-rank tensor ops: the formulation that ONNX export traces.

`sliding_window.py` is faster in PyTorch, but its paths cannot be traced into a graph that stays
right at other lengths: overlapping `unfold` views become `as_strided` with the strides of the
traced length, Python loops run over batch rows and blocks, and the number of global tokens
becomes a Python int. Here every shape is an expression of the input's shape or of one graph value:

* the sequence is padded to nb = ceil(T / b) blocks of b query rows (b divides the one-sided
  window w, m = w / b); the keys are padded by w on both sides, and block i's keys are the padded
  positions i * b .. i * b + b + 2w - 1 (key blocks i .. i + 2m), taken by one gather: b + 2w keys
  that cover every window of its rows (no strided views: reshape, gather, concat);
* the global tokens are gathered by index: their positions come from a top-k over the position
  (globals first, in order), G = max(1, most globals in a row) is a graph value (a tensor read
  once), and slots past a row's own count are masked, so a batch may mix rows with and without
  globals; G is at least 1 so that no tensor has an empty axis;
* masked scores get the dtype's minimum added, not -inf: a row with no key left (padding) stays
  finite and is zeroed afterwards.

Memory: the scores of a layer are (B, H, T, g + b + 2w), linear in T (at w = 256, b = 128:
2.5w + g per row; the exact band needs 2w + 1), computed for a quarter of the heads at a time.

Shapes: B batch, H heads, T tokens, D head size, G global slots, w one-sided window, b block rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_BLOCK_ROWS = 128  # query rows per block: the largest divisor of w up to this
HEAD_GROUPS = 4  # heads computed in this many groups, one after the other (peak memory / 4 in onnxruntime)


def block_rows(one_sided: int) -> int:
    """Rows per query block: the largest divisor of the one-sided window `w` up to MAX_BLOCK_ROWS (a
    divisor, so that block i's keys are whole key blocks)."""
    return max(d for d in range(1, min(one_sided, MAX_BLOCK_ROWS) + 1) if one_sided % d == 0)


def global_slots(is_global: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) bool -> (indices (B, G) long, valid (B, G) bool): each row's global positions in
    increasing order, then slots of padding (index 0, not valid); G = max(1, most globals in a row)."""
    t = is_global.shape[1]
    counts = is_global.sum(dim=1)  # (B,)
    g = counts.max().clamp(min=1).item()  # an int; a graph value (a symbol) when traced for export
    torch._check(g >= 1)
    torch._check(g <= t)
    position = torch.arange(t, device=is_global.device)
    order_key = torch.where(is_global, position, position + t)  # globals first, each in its place
    indices = order_key.topk(g, dim=1, largest=False).indices  # (B, G)
    valid = torch.arange(g, device=is_global.device)[None, :] < counts[:, None]
    return torch.where(valid, indices, 0), valid


def gather_rows(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D), (B, G) -> (B, H, G, D)."""
    index = indices[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3])
    return x.gather(2, index)


def _key_blocks(x: torch.Tensor, n_blocks: int, b: int, m: int) -> torch.Tensor:
    """(..., (nb + 2m) * b, X) -> (..., nb, (2m + 1) * b, X): block i holds key blocks i .. i + 2m, taken
    by one gather of positions i * b + s (one copy; slicing 2m + 1 block ranges and concatenating them
    made two, and took onnxruntime twice as long)."""
    span = (2 * m + 1) * b
    position = torch.arange(n_blocks, device=x.device)[:, None] * b + torch.arange(span, device=x.device)[None, :]
    return x.index_select(-2, position.reshape(-1)).reshape(*x.shape[:-2], n_blocks, span, x.shape[-1])


def band_bias(is_token, is_global, valid, one_sided: int, dtype=torch.float32) -> torch.Tensor:
    """(B, 1, nb, b, G + b + 2w) additive mask: 0 where a query row may see the key (global slots first,
    then its block's band: real, non-global tokens within w of it), the dtype's minimum elsewhere. The
    same for every layer of one window: built once per forward pass. Added, not filled in with a
    `where`: onnxruntime broadcasts an Add over the heads several times faster, and a score plus the
    minimum rounds to the minimum, so the softmax is the same."""
    t = is_token.shape[1]
    w = one_sided
    b = block_rows(w)
    m = w // b
    n_blocks = (t + b - 1) // b
    tail = n_blocks * b - t
    keys = F.pad(is_token & ~is_global, (w, tail + w), value=False)  # (B, Tp + 2w)
    keys = _key_blocks(keys[..., None], n_blocks, b, m)[..., 0]  # (B, nb, span)
    span = (2 * m + 1) * b
    row = torch.arange(b, device=is_token.device)[:, None]
    slot = torch.arange(span, device=is_token.device)[None, :]
    in_window = (slot - row >= 0) & (slot - row <= 2 * w)  # (b, span): key slot s is row r's offset s - r - w
    band = in_window & keys[:, :, None, :]  # (B, nb, b, span)
    glob = valid[:, None, None, :].expand(-1, n_blocks, b, -1)  # (B, nb, b, G)
    allowed = torch.cat([glob, band], dim=-1)[:, None]
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def band_local_attention(q, k, v, bias, indices, one_sided: int, head_groups: int = HEAD_GROUPS) -> torch.Tensor:
    """Rows of every token against its window (padding and global keys removed) and the global keys.

    q, k, v: (B, H, T, D) local projections, unscaled; bias: `band_bias(...)`; indices: the global
    slots' positions (`global_slots`). The global keys are put in front of every block's band keys
    (a copy of the keys, D wide) rather than their scores beside the band's (G + b + 2w wide): one
    product and one softmax over [globals | band], no concatenation or slicing of scores.
    Returns (B, H, T, D); rows of padding are not zeroed.

    The heads are computed `head_groups` groups at a time (a fixed split, unrolled in the graph), so
    that only one group's scores are alive at once: onnxruntime, which keeps every intermediate of an
    op until its consumers ran, otherwise held three score-sized tensors of all heads."""
    if head_groups > 1 and q.shape[1] > 1:
        size = -(-q.shape[1] // head_groups)
        return torch.cat([band_local_attention(qg, kg, vg, bias, indices, one_sided, 1)
                          for qg, kg, vg in zip(q.split(size, 1), k.split(size, 1), v.split(size, 1))], dim=1)
    bsz, h, t, d = q.shape
    w = one_sided
    b = block_rows(w)
    m = w // b
    n_blocks = (t + b - 1) // b
    tail = n_blocks * b - t
    q_blocks = F.pad(q * (1.0 / math.sqrt(d)), (0, 0, 0, tail)).reshape(bsz, h, n_blocks, b, d)

    def keys_of(x):  # (B, H, T, D) -> (B, H, nb, G + span, D)
        glob = gather_rows(x, indices)[:, :, None].expand(-1, -1, n_blocks, -1, -1)
        return torch.cat([glob, _key_blocks(F.pad(x, (0, 0, w, tail + w)), n_blocks, b, m)], dim=3)

    scores = torch.matmul(q_blocks, keys_of(k).transpose(-1, -2)) + bias  # (B, H, nb, b, G + span)
    out = torch.matmul(torch.softmax(scores, dim=-1), keys_of(v))  # (B, H, nb, b, D)
    return out.reshape(bsz, h, n_blocks * b, d)[:, :, :t]


def global_rows_attention(q_glob, k, v, is_token) -> torch.Tensor:
    """Rows of the global tokens against every real key (the global projections).

    q_glob: (B, H, G, D); k, v: (B, H, T, D); is_token (B, T) bool. Returns (B, H, G, D)."""
    scores = torch.matmul(q_glob * (1.0 / math.sqrt(q_glob.shape[-1])), k.transpose(-1, -2))  # (B, H, G, T)
    scores = scores.masked_fill(~is_token[:, None, None, :], torch.finfo(scores.dtype).min)
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def merge_rows(out, rows, indices, valid, is_token, is_global) -> torch.Tensor:
    """The global tokens' rows (B, H, G, D) written over `out` (B, H, T, D); padding rows zeroed."""
    index = indices[:, None, :, None].expand(-1, out.shape[1], -1, out.shape[3])
    placed = torch.zeros_like(out).scatter_add(2, index, rows * valid[:, None, :, None].to(rows.dtype))
    out = torch.where(is_global[:, None, :, None], placed, out)
    return out * is_token[:, None, :, None].to(out.dtype)
