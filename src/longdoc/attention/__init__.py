"""Attention kernels as pure functions over (B, H, T, D) tensors, with typed masks and a dense oracle."""

from .lsg import SPARSE_FUNCTIONS, lsg_attention, sparse_keys
from .lsg_bias import LSGPositionBias
from .lsg_pattern import SPARSITY_TYPES, LSGGeometry, LSGPattern
from .masks import GlobalTokens, LongformerPattern, SlidingWindow
from .reference import dense_attention, dense_longformer_attention, dense_lsg_attention
from .sliding_window import (
    global_attention,
    global_attention_factored,
    local_attention,
    longformer_attention,
    merge_global_rows,
)

__all__ = [
    "LSGGeometry",
    "LSGPattern",
    "LSGPositionBias",
    "SPARSE_FUNCTIONS",
    "SPARSITY_TYPES",
    "dense_lsg_attention",
    "lsg_attention",
    "sparse_keys",
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
