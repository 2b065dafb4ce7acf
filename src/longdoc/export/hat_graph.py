"""A HAT task model as the module ONNX export traces: the model's embeddings, layers and head, called
with the padding masks always given.

HATModel's forward runs its layers without masks when a batch has no padding (a Python bool of the
inputs' values) and checks token ids by value; neither can be traced. Here the masks are always
passed, which gives the same numbers (an additive mask of zeros), and the checks are left to
`onnx_model.OnnxHAT`. Every export is checked against the model itself.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.hat_heads import real_segments

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = {"classification": ("logits",), "sentences": ("logits",), "spans": ("start_logits", "end_logits")}


class HATGraph(nn.Module):
    """forward(input_ids, attention_mask, token_type_ids), each (B, N * L) int64 -> logits (B, labels)
    ("classification"), (B, N, labels) ("sentences"), or start and end logits (B, N * L) ("spans")."""

    def __init__(self, model, head: str):
        super().__init__()
        if head not in OUTPUTS:
            raise ValueError(f"no HAT graph for a {head} head (only {', '.join(OUTPUTS)})")
        self.model, self.head = model, head

    def forward(self, input_ids, attention_mask, token_type_ids):
        model, config = self.model, self.model.config
        base = model.hi_transformer
        is_token = attention_mask != 0
        hidden = self._embeddings(base.embeddings, input_ids, token_type_ids)
        size = config.max_sentence_size
        batch, length = input_ids.shape
        token_keys = is_token.reshape(batch * (length // size), size)  # (B * N, L)
        segment_keys = is_token[:, ::size]  # (B, N)
        encoder = base.encoder
        positions = None
        if encoder.cross_layers and not config.legacy_segment_positions:
            numbers = torch.arange(1, segment_keys.shape[1] + 1, device=input_ids.device)
            positions = encoder.segment_position_table(numbers[None, :] * segment_keys.long()).to(hidden.dtype)
        token_bias = encoder.token_bias(hidden.dtype)
        for layer in encoder.layer:
            hidden = layer(hidden, token_keys, segment_keys, positions, False, token_bias)[0]
        if self.head == "classification":
            return model.classifier(model.pooler(hidden, real_segments(config, attention_mask)))
        if self.head == "sentences":
            return model.classifier(model.sentencizer(hidden))
        logits = model.qa_outputs(hidden)
        return logits[..., 0], logits[..., 1]

    @staticmethod
    def _embeddings(embeddings, input_ids, token_type_ids) -> torch.Tensor:
        """HATEmbeddings.forward without its value checks: positions restart in every segment."""
        positions = embeddings.position_ids(input_ids.ne(embeddings.padding_idx))
        x = embeddings.word_embeddings(input_ids) + embeddings.token_type_embeddings(token_type_ids)
        x = x + embeddings.position_embeddings(positions)
        return embeddings.LayerNorm(x)
