"""Token <-> segment reshapes and the dense attention of hierarchical models (HAT).

A document of N segments of L tokens is a flat (B, N * L, C) sequence; the segment-wise encoder
reads it as (B * N, L, C), the cross-segment encoder reads the segments' first tokens (B, N, C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def tokens_to_segments(hidden: torch.Tensor, segment_size: int) -> torch.Tensor:
    """(B, N * L, C) -> (B * N, L, C), a view."""
    batch, length, channels = hidden.shape
    return hidden.reshape(batch * (length // segment_size), segment_size, channels)


def segments_to_tokens(hidden: torch.Tensor, batch: int) -> torch.Tensor:
    """(B * N, L, C) -> (B, N * L, C), a view."""
    return hidden.reshape(batch, -1, hidden.shape[-1])


def segment_heads(hidden: torch.Tensor, segment_size: int) -> torch.Tensor:
    """The first token of every segment: (B, N * L, C) -> (B, N, C), a strided view."""
    return hidden[:, ::segment_size]


def additive_mask(is_key: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) bool -> (B, 1, 1, T) additive mask: 0 for keys, the dtype's minimum for padding.

    The minimum (not -inf) keeps a query whose keys are all padding finite: its scores all become
    the same value and it averages every value uniformly, as the reference's extended mask does for
    an empty segment."""
    return (~is_key)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


def dense_attention(q, k, v, is_key: torch.Tensor, dropout: float = 0.0, return_probs: bool = False,
                    position_bias: torch.Tensor | None = None):
    """Softmax attention of every query over the keys of its row.

    q, k, v: (B, H, T, D); is_key: (B, T) bool, or None when every key is real (no mask: the
    fused kernel runs faster without one); position_bias: (1, H, T, T) added to the scores
    (MPNet's relative bias) or None. Returns (B, H, T, D) and, when asked, the probabilities
    (B, H, T, T) (computed explicitly; otherwise fused SDPA).
    """
    mask = None if is_key is None else additive_mask(is_key, q.dtype)  # (B, 1, 1, T)
    if position_bias is not None:
        bias = position_bias.to(q.dtype)
        mask = bias if mask is None else mask + bias  # (B, H, T, T)
    if not return_probs:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout), None
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, T, T)
    if mask is not None:
        scores = scores + mask
    probs = scores.softmax(-1)
    out = torch.matmul(F.dropout(probs, dropout) if dropout else probs, v)
    return out, probs
