"""The Longformer family: a short encoder converted into a Longformer (sliding-window attention with
global tokens) that reads a document whole, up to its length (4096 tokens unless --max-length)."""

from __future__ import annotations

from .sequence import SequenceFamily


class LongformerFamily(SequenceFamily):
    target = "longformer"
    title = "Longformer"
    a_title = "a Longformer"

    def is_own(self, config):
        return config.model_type == "longformer"

    def head_classes(self, config):
        from ..models import (
            LongformerForMaskedLM,
            LongformerForMultipleChoice,
            LongformerForQuestionAnswering,
            LongformerForSequenceClassification,
            LongformerForTokenClassification,
        )

        return {"classification": LongformerForSequenceClassification, "spans": LongformerForQuestionAnswering,
                "tokens": LongformerForTokenClassification, "choices": LongformerForMultipleChoice,
                "masked-lm": LongformerForMaskedLM}

    def conversion_settings(self, max_length, options):
        return {"window": min(512, max_length - max_length % 2)}  # the allenai window, or the whole input when shorter

    def max_length(self, model, tokenizer):
        return model.config.max_position_embeddings - model.config.pad_token_id - 1
