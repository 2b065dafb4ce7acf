"""Extractive question answering: start/end span loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def span_loss(start_logits, end_logits, start_positions, end_positions) -> torch.Tensor:
    """Mean of start and end cross-entropy; positions outside the sequence are ignored."""
    if start_positions.dim() > 1:
        start_positions = start_positions.squeeze(-1)
    if end_positions.dim() > 1:
        end_positions = end_positions.squeeze(-1)
    ignored = start_logits.shape[1]
    start = start_positions.clamp(0, ignored)
    end = end_positions.clamp(0, ignored)
    loss = F.cross_entropy(start_logits, start, ignore_index=ignored)
    return (loss + F.cross_entropy(end_logits, end, ignore_index=ignored)) / 2
