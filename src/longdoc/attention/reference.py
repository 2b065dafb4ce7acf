"""Dense fp32 masked attention: the oracle every kernel is tested against.

Quadratic in memory on purpose: it is written to be obviously right, not fast.
"""

from __future__ import annotations

import math

import torch

from .masks import LongformerPattern


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> tuple:
    """Softmax attention in fp32 under a boolean mask.

    q: (B, H, Tq, D), k/v: (B, H, Tk, D), allowed: (B, Tq, Tk) or (B, H, Tq, Tk) bool.
    Rows with no allowed key give zero output and zero probabilities.
    Returns (out (B, H, Tq, D) in q's dtype, probs (B, H, Tq, Tk) fp32).
    """
    if allowed.dim() == 3:
        allowed = allowed[:, None]
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
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
