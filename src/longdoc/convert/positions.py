"""Position-table extension: a long table that gives token k the vector the source gave it.

A table has `offset` leading rows that no real token reads (RoBERTa's padding rows), then one
row per token position. The new table keeps the source's token rows at the start of its own
token rows and tiles them until `max_tokens` positions are covered (allenai's recipe: a
Longformer starts from the short model's positional knowledge, repeated).
"""

from __future__ import annotations

import torch


def extend_position_table(
    table: torch.Tensor, source_offset: int, target_offset: int, max_tokens: int
) -> torch.Tensor:
    """(P, C) source table -> (target_offset + max_tokens, C).

    new[target_offset + k] = table[source_offset + k % n], n = P - source_offset token rows.
    The target's leading rows are read only by padding tokens (whose outputs are masked):
    they keep the source's leading rows where the source has them, zeros otherwise.
    """
    if table.dim() != 2:
        raise ValueError(f"a position table is (positions, hidden), got shape {tuple(table.shape)}")
    token_rows = table[source_offset:]  # (n, C)
    n = token_rows.shape[0]
    if n <= 0:
        raise ValueError(f"position table of {table.shape[0]} rows has no token rows after offset {source_offset}")
    new = table.new_zeros(target_offset + max_tokens, table.shape[1])
    kept = min(source_offset, target_offset)
    new[:kept] = table[:kept]
    for start in range(0, max_tokens, n):
        stop = min(start + n, max_tokens)
        new[target_offset + start : target_offset + stop] = token_rows[: stop - start]
    return new
