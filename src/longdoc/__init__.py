"""longdoc: transformers over long documents."""

from .models import (
    LongformerConfig,
    LongformerForMaskedLM,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
    LongformerModel,
    LongformerPreTrainedModel,
)

from .models.segment_classifier import SegmentClassifier, SegmentClassifierConfig
from .pipelines import DocumentClassifier, DocumentPrediction
from .train import TrainingResult, train_classifier

__version__ = "0.2.0"

__all__ = [
    "DocumentClassifier",
    "DocumentPrediction",
    "SegmentClassifier",
    "SegmentClassifierConfig",
    "TrainingResult",
    "train_classifier",
    "LongformerConfig",
    "LongformerForMaskedLM",
    "LongformerForMultipleChoice",
    "LongformerForQuestionAnswering",
    "LongformerForSequenceClassification",
    "LongformerForTokenClassification",
    "LongformerModel",
    "LongformerPreTrainedModel",
]
