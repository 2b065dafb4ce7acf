"""Attention kernels as pure functions over (B, H, T, D) tensors, with typed masks and a dense oracle."""

from .masks import GlobalTokens, LongformerPattern, SlidingWindow
from .reference import dense_attention, dense_longformer_attention
from .sliding_window import (
    global_attention,
    global_attention_factored,
    local_attention,
    longformer_attention,
    merge_global_rows,
)

__all__ = [
    "GlobalTokens",
    "LongformerPattern",
    "SlidingWindow",
    "dense_attention",
    "dense_longformer_attention",
    "global_attention",
    "global_attention_factored",
    "local_attention",
    "longformer_attention",
    "merge_global_rows",
]
