"""longdoc: transformers over long documents."""

from .models import *  # noqa: F401,F403  (the LSG classes, under lsg-converter's names)
from .models import LSG_CLASSES
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

__all__ = LSG_CLASSES + [
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
