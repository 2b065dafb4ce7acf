"""Model families; each plugs its attention into the shared encoder layer and heads."""

from .longformer import LongformerConfig, LongformerModel, LongformerPreTrainedModel
from .lsg import LSGBertConfig, LSGBertModel, LSGRobertaConfig, LSGRobertaModel
from .lsg_bart import (
    LSGBartConfig,
    LSGBartForConditionalGeneration,
    LSGBartForQuestionAnswering,
    LSGBartForSequenceClassification,
    LSGBartModel,
)
from .lsg_mpnet import (
    LSGMPNetConfig,
    LSGMPNetForMaskedLM,
    LSGMPNetForMultipleChoice,
    LSGMPNetForQuestionAnswering,
    LSGMPNetForSequenceClassification,
    LSGMPNetForTokenClassification,
    LSGMPNetModel,
)
from .lsg_heads import (
    LSGBertForMaskedLM,
    LSGBertForMultipleChoice,
    LSGBertForQuestionAnswering,
    LSGBertForSequenceClassification,
    LSGBertForTokenClassification,
    LSGRobertaForMaskedLM,
    LSGRobertaForMultipleChoice,
    LSGRobertaForQuestionAnswering,
    LSGRobertaForSequenceClassification,
    LSGRobertaForTokenClassification,
)
from .hat import BaseModelOutputWithSentenceAttentions, HATModel, HATPreTrainedModel
from .hat_config import HATConfig
from .hat_heads import (
    HATForMaskedLM,
    HATForMultipleChoice,
    HATForQuestionAnswering,
    HATForSequenceClassification,
    HATForSequentialSentenceClassification,
    HATForTokenClassification,
    HATModelForSequentialSentenceClassification,
)
from .longformer_heads import (
    LongformerForMaskedLM,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
)

LSG_CLASSES = [
    "LSGBartConfig", "LSGBartForConditionalGeneration", "LSGBartForQuestionAnswering",
    "LSGBartForSequenceClassification", "LSGBartModel",
    "LSGBertConfig", "LSGBertForMaskedLM", "LSGBertForMultipleChoice", "LSGBertForQuestionAnswering",
    "LSGBertForSequenceClassification", "LSGBertForTokenClassification", "LSGBertModel",
    "LSGMPNetConfig", "LSGMPNetForMaskedLM", "LSGMPNetForMultipleChoice", "LSGMPNetForQuestionAnswering",
    "LSGMPNetForSequenceClassification", "LSGMPNetForTokenClassification", "LSGMPNetModel",
    "LSGRobertaConfig", "LSGRobertaForMaskedLM", "LSGRobertaForMultipleChoice", "LSGRobertaForQuestionAnswering",
    "LSGRobertaForSequenceClassification", "LSGRobertaForTokenClassification", "LSGRobertaModel",
]

HAT_CLASSES = [
    "HATConfig", "HATModel", "HATPreTrainedModel", "HATForMaskedLM", "HATForSequenceClassification",
    "HATForSequentialSentenceClassification", "HATModelForSequentialSentenceClassification", "HATForMultipleChoice",
    "HATForTokenClassification", "HATForQuestionAnswering",
]

__all__ = LSG_CLASSES + HAT_CLASSES + [
    "LongformerConfig",
    "LongformerModel",
    "LongformerPreTrainedModel",
    "LongformerForMaskedLM",
    "LongformerForMultipleChoice",
    "LongformerForQuestionAnswering",
    "LongformerForSequenceClassification",
    "LongformerForTokenClassification",
]
