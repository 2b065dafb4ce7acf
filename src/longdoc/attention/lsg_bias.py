"""Relative positions of LSG's keys, for models with a relative position bias (MPNet).

A relative bias needs the distance from each query to each key. Under LSG:
- tokens see tokens at their true distance (local keys, and every key in the full-attention
  fallback of short inputs);
- a compressed sparse key stands for `sparsity_factor` tokens and takes the distance of their
  centre (with blocks of 128 and more every sparse key is beyond MPNet's 128-token horizon, where
  the bias no longer depends on the distance: the choice is then exact);
- global tokens have no position: scores to and from them get no bias.

Every block sees its keys at the same offsets, so the blocked bias is one (H, bs, L) table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .lsg_pattern import LSGPattern


@dataclass
class LSGPositionBias:
    """full: (H, G + T, G + T) for the full-attention fallback; blocks: (H, bs, L) for every query block."""

    full: torch.Tensor | None = None
    blocks: torch.Tensor | None = None


def fallback_offsets(length: int, device=None) -> torch.Tensor:
    """(T, T) key position - query position over the tokens."""
    pos = torch.arange(length, device=device)
    return pos[None, :] - pos[:, None]


def block_offsets(pattern: LSGPattern) -> torch.Tensor:
    """(bs, S + 3*bs) key position - query position for a query block's sparse and local keys."""
    geo = pattern.geometry
    bs, f = geo.block_size, geo.sparsity_factor
    query = torch.arange(bs)[:, None]
    local = torch.arange(3 * bs)[None, :] - bs - query  # key (i-1)*bs + m, query i*bs + a
    if not geo.has_sparse:
        return local
    chosen, pad = geo.sparse_offsets()
    centre = (chosen - pad) * f + (f - 1) // 2  # compressed key c covers tokens c*f .. c*f + f - 1
    return torch.cat([centre[None, :] - query, local], dim=1)


def with_global_zeros(bias: torch.Tensor, num_global: int, rows: bool) -> torch.Tensor:
    """Prepend zero columns (and rows) for the global tokens: (H, Q, K) -> (H, [G +] Q, G + K)."""
    h, q, k = bias.shape
    out = bias.new_zeros(h, q + (num_global if rows else 0), k + num_global)
    out[:, num_global if rows else 0:, num_global:] = bias
    return out
