"""longdoc: transformers over long documents."""

from .models import *  # noqa: F401,F403  (the LSG classes, under lsg-converter's names)
from .models import HAT_CLASSES, LSG_CLASSES
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
from .pipelines import DocumentClassifier, DocumentPrediction, SentenceClassifier, SentencePrediction
from .summarizer import Summarizer
from .train_summarizer import SummarizationResult, train_summarizer
from .train import TrainingResult, train_classifier

__version__ = "0.3.0"

__all__ = LSG_CLASSES + HAT_CLASSES + [
    "Summarizer",
    "SummarizationResult",
    "train_summarizer",
    "DocumentClassifier",
    "DocumentPrediction",
    "SentenceClassifier",
    "SentencePrediction",
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
