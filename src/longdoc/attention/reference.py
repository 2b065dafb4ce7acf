"""Dense fp32 masked attention: the oracle every kernel is tested against.

Quadratic in memory on purpose: it is written to be obviously right, not fast.
"""

from __future__ import annotations

import math

import torch

from .lsg_pattern import LSGPattern
from .masks import LongformerPattern


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, bias=None) -> tuple:
    """Softmax attention in fp32 under a boolean mask.

    q: (B, H, Tq, D), k/v: (B, H, Tk, D), allowed: (B, Tq, Tk) or (B, H, Tq, Tk) bool.
    Rows with no allowed key give zero output and zero probabilities.
    Returns (out (B, H, Tq, D) in q's dtype, probs (B, H, Tq, Tk) fp32).
    """
    if allowed.dim() == 3:
        allowed = allowed[:, None]
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    if bias is not None:  # additive (…, Tq, Tk), e.g. a relative position bias
        scores = scores + bias.float()
    scores = scores.masked_fill(~allowed, float("-inf"))
    any_key = allowed.any(dim=-1, keepdim=True)
    probs = torch.softmax(scores.masked_fill(~any_key, 0.0), dim=-1) * any_key
    out = probs @ v.float()
    return out.to(q.dtype), probs


def dense_longformer_attention(q, k, v, q_global, k_global, v_global, pattern: LongformerPattern):
    """Longformer attention by definition, densely.

    q, k, v:                      (B, H, T, D) local projections of every token
    q_global, k_global, v_global: (B, H, T, D) global projections of every token
    Local rows attend to their window (minus padding and global keys) plus every global key;
    global rows attend to every real key with the global projections; padded rows are zero.
    Returns (out (B, H, T, D), local_probs (B, H, T, T), global_probs (B, H, T, T)).
    """
    local_allowed, global_allowed = pattern.materialize()
    out, local_probs = dense_attention(q, k, v, local_allowed)
    g_out, global_probs = dense_attention(q_global, k_global, v_global, global_allowed)
    is_global = pattern.is_global[:, None, :, None]  # (B, 1, T, 1)
    is_token = pattern.is_token[:, None, :, None]
    out = torch.where(is_global, g_out, out) * is_token
    return out, local_probs, global_probs


def dense_lsg_compressed(q, k, v, pattern: LSGPattern):
    """The compressed keys of the deterministic sparsity types, computed the slow obvious way.

    Returns (k_c, v_c, valid_c) as (B, H, Tc, D), (B, H, Tc, D), (B, H, Tc) bool.
    """
    geo = pattern.geometry
    b, h, t, d = k.shape
    f, kind, is_key = geo.sparsity_factor, geo.sparsity_type, pattern.is_key
    if f == 1:
        return k, v, is_key[:, None].expand(-1, h, -1)
    if kind == "stride":
        index = torch.stack([torch.arange(hh % f, t, f) for hh in range(h)])  # (H, Tc)
    elif kind == "block_stride":
        run, bs = geo.block_size // f, geo.block_size
        index = torch.stack([
            torch.cat([start + (torch.arange(hh * run, hh * run + run) % bs) for start in range(0, t, bs)])
            for hh in range(h)
        ])
    elif kind == "norm":
        chunk = min(geo.block_size, geo.sparse_block_size)
        norms = k.norm(dim=-1) * is_key[:, None]
        top = norms.view(b, h, t // chunk, chunk).topk(chunk // f, dim=-1).indices
        index = (top + torch.arange(0, t, chunk)[:, None]).reshape(b, h, -1)
    if kind in ("stride", "block_stride", "norm"):
        index = index.expand(b, h, -1)
        take = lambda x: torch.stack([x[i, j, index[i, j]] for i in range(b) for j in range(h)]).view(b, h, -1, d)
        valid = torch.stack([is_key[i, index[i, j]] for i in range(b) for j in range(h)]).view(b, h, -1)
        return take(k), take(v), valid
    windows = is_key.view(b, 1, t // f, f, 1).float()
    valid = windows.sum(dim=(-1, -2)) > 0  # (B, 1, Tc)
    if kind == "pooling":
        weights = windows / (windows.sum(dim=-2, keepdim=True) + 1e-6)
    elif kind == "bos_pooling":  # lsg-converter's arithmetic as it is written: an additive mask of 0 or min
        minimum = torch.finfo(k.dtype).min
        additive = (1.0 - windows.to(k.dtype)) * minimum  # (B, 1, Tc, f, 1)
        scores = (k.view(b, h, t // f, f, d) @ q[:, :, 0, :, None].unsqueeze(2)) / math.sqrt(d)  # (B, H, Tc, f, 1)
        weights = torch.softmax(scores + additive, dim=-2)
        valid = additive.mean(dim=(-1, -2)) != minimum  # a window is masked only where the mean is exactly min
    else:
        raise ValueError(f"no dense oracle for sparsity type {kind!r}")
    pool = lambda x: (x.view(b, h, t // f, f, d) * weights).sum(dim=-2)
    return pool(k), pool(v), valid.expand(-1, h, -1)


def dense_lsg_attention(q, k, v, pattern: LSGPattern, compressed=None, relative_bias=None):
    """LSG attention by definition: every query attends densely over [globals | compressed | tokens]
    under a materialised mask. q, k, v: (B, H, G + T, D). Returns (B, H, G + T, D).

    `compressed` (k_c, v_c, valid_c) overrides the oracle's own compressed keys (for `lsh`).
    `relative_bias(offsets) -> (H, *offsets.shape)`: a bias by key position - query position, for the
    token rows; a compressed key sits at the centre of its sparsity_factor tokens, globals get none."""
    geo = pattern.geometry
    g, bs = geo.num_global_tokens, geo.block_size
    b, h, n, d = q.shape
    t = n - g
    is_key = pattern.is_key
    glob_visible = pattern.global_key_mask()  # (B, G)
    full = torch.cat([glob_visible, is_key], dim=1)  # (B, G + T)
    pos = torch.arange(t)
    if t <= 2 * bs:
        bias = None
        if relative_bias is not None:
            bias = torch.zeros(h, n, n)
            bias[:, g:, g:] = relative_bias(pos[None, :] - pos[:, None])
        return dense_attention(q, k, v, full[:, None, :].expand(-1, n, -1), bias)[0]
    q_tok, k_tok, v_tok = q[:, :, g:], k[:, :, g:], v[:, :, g:]
    if geo.has_sparse:
        k_c, v_c, valid_c = compressed or dense_lsg_compressed(q_tok, k_tok, v_tok, pattern)
    else:
        k_c, v_c, valid_c = k[:, :, :0], v[:, :, :0], torch.zeros(b, h, 0, dtype=torch.bool)
    tc = k_c.shape[2]
    step, sbs = bs // geo.sparsity_factor if geo.has_sparse else 0, geo.sparse_block_size
    block = torch.arange(t) // bs  # (T,)
    local = (block[:, None] - block[None, :]).abs() <= 1  # (T, T)
    c = torch.arange(tc)
    left_end = (block - 1) * step  # sparse keys just left of the local window, and just right of it
    right_start = (block + 2) * step
    sparse = ((c[None, :] >= left_end[:, None] - sbs) & (c[None, :] < left_end[:, None])) | (
        (c[None, :] >= right_start[:, None]) & (c[None, :] < right_start[:, None] + sbs))  # (T, Tc)
    allowed_tok = torch.cat([
        glob_visible[:, None, None, :].expand(-1, h, t, -1),
        sparse[None, None] & valid_c.expand(b, h, -1)[:, :, None, :],
        (local[None, None] & is_key[:, None, None, :]).expand(-1, h, -1, -1),
    ], dim=-1)  # (B, H, T, G + Tc + T)
    keys = torch.cat([k[:, :, :g], k_c, k_tok], dim=2)
    values = torch.cat([v[:, :, :g], v_c, v_tok], dim=2)
    bias = None
    if relative_bias is not None:
        f = geo.sparsity_factor
        centre = c * f + (f - 1) // 2
        bias = torch.cat([torch.zeros(h, t, g), relative_bias(centre[None, :] - pos[:, None]),
                          relative_bias(pos[None, :] - pos[:, None])], dim=-1)  # (H, T, G + Tc + T)
    out_tok = dense_attention(q_tok, keys, values, allowed_tok, bias)[0]
    out_glob = dense_attention(q[:, :, :g], k, v, full[:, None, :].expand(-1, g, -1))[0]
    return torch.cat([out_glob, out_tok], dim=2)
