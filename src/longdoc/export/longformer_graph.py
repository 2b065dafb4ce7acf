"""A Longformer task model as the module ONNX export traces: the model's own weights and layers, its
attention in the banded formulation (`longdoc.attention.banded`).

The model's forward cannot be traced as it is: its CPU kernel reads overlapping strided views and
loops over batch rows, the number of global tokens becomes a Python int, and its input checks read
tensor values. This module calls the same submodules (embeddings' tables and LayerNorm, each layer's
projections, output blocks and feed-forward, the head) in the same order, with the checks left to the
ONNX model's caller (`onnx_model.OnnxLongformer`). Every export is checked against the model itself.
"""

from __future__ import annotations

import torch
from torch import nn

from ..attention.banded import band_bias, band_local_attention, global_rows_attention, global_slots, merge_rows
from ..models.layers import roberta_position_ids

INPUTS = ("input_ids", "attention_mask", "global_attention_mask", "token_type_ids")
OUTPUTS = {"classification": ("logits",), "spans": ("start_logits", "end_logits")}


def _heads(attention, x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, H, T, D)."""
    return x.view(x.shape[0], x.shape[1], attention.num_heads, attention.head_dim).transpose(1, 2)


class LongformerGraph(nn.Module):
    """forward(input_ids, attention_mask, global_attention_mask, token_type_ids), each (B, T) int64 ->
    logits (B, L) for "classification", (start_logits, end_logits) (B, T) each for "spans"."""

    def __init__(self, model, head: str):
        super().__init__()
        if head not in OUTPUTS:
            raise ValueError(f"no Longformer graph for a {head} head (only {', '.join(OUTPUTS)})")
        self.model, self.head = model, head

    def forward(self, input_ids, attention_mask, global_attention_mask, token_type_ids):
        base = self.model.longformer
        is_token = attention_mask != 0
        is_global = (global_attention_mask != 0) & is_token  # as LongformerPattern.build: globals are real tokens
        embeddings = base.embeddings
        positions = roberta_position_ids(input_ids, input_ids.shape, embeddings.padding_idx, input_ids.device)
        hidden = (embeddings.word_embeddings(input_ids) + embeddings.position_embeddings(positions)
                  + embeddings.token_type_embeddings(token_type_ids))
        hidden = embeddings.LayerNorm(hidden)
        indices, valid = global_slots(is_global)
        biases = {}  # one band mask per window size, shared by its layers
        for layer in base.encoder.layer:
            w = layer.attention.self.window.one_sided
            if w not in biases:
                biases[w] = band_bias(is_token, is_global, valid, w, hidden.dtype)
            context = self._attention(layer.attention.self, hidden, is_token, is_global, indices, valid, biases[w])
            attended = layer.attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(attended), attended)
        if self.head == "classification":
            return self.model.classifier(hidden)
        logits = self.model.qa_outputs(hidden)  # (B, T, 2)
        return logits[..., 0], logits[..., 1]

    @staticmethod
    def _attention(attention, hidden, is_token, is_global, indices, valid, bias) -> torch.Tensor:
        """A LongformerSelfAttention's context (B, T, C): local rows in the band, then the global rows."""
        q, k, v = (_heads(attention, p(hidden)) for p in (attention.query, attention.key, attention.value))
        out = band_local_attention(q, k, v, bias, indices, attention.window.one_sided)
        chosen = hidden.gather(1, indices[:, :, None].expand(-1, -1, hidden.shape[-1]))  # (B, G, C)
        rows = global_rows_attention(_heads(attention, attention.query_global(chosen)),
                                     _heads(attention, attention.key_global(hidden)),
                                     _heads(attention, attention.value_global(hidden)), is_token)
        out = merge_rows(out, rows, indices, valid, is_token, is_global)
        return out.transpose(1, 2).reshape(hidden.shape)

