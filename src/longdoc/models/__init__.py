"""Model families; each plugs its attention into the shared encoder layer and heads."""

from .longformer import LongformerConfig, LongformerModel, LongformerPreTrainedModel
from .longformer_heads import (
    LongformerForMaskedLM,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
)

__all__ = [
    "LongformerConfig",
    "LongformerModel",
    "LongformerPreTrainedModel",
    "LongformerForMaskedLM",
    "LongformerForMultipleChoice",
    "LongformerForQuestionAnswering",
    "LongformerForSequenceClassification",
    "LongformerForTokenClassification",
]
