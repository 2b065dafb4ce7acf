"""LSG task models for BERT and RoBERTa checkpoints, with `lsg-converter`'s class names.

Each is the shared task model (task_models.py) over LSGBertModel / LSGRobertaModel; BERT's
masked-LM head is published as `cls.predictions.*` and maps onto the shared `lm_head` by name.

The QA models attend the question globally (`question_global`, see lsg.py) when longdoc builds
them: a config that leaves the field unset turns it on, unless it is the config of a QA checkpoint
(lsg-converter's own, which has no such field and must give lsg-converter's outputs).
"""

from __future__ import annotations

from .lsg import LSGBertModel, LSGBertPreTrainedModel, LSGRobertaModel, LSGRobertaPreTrainedModel
from .task_models import (
    MaskedLMTaskModel,
    MultipleChoiceTaskModel,
    QuestionAnsweringTaskModel,
    SequenceClassificationTaskModel,
    TokenClassificationTaskModel,
)
from .weight_names import BERT_LM_HEAD, register_weight_names


class LSGQuestionAnswering(QuestionAnsweringTaskModel):
    """Extractive QA; the question is attended globally unless the config says otherwise. Forward takes
    the encoder's `question_mask` too (by default every token before the first config.sep_token_id)."""

    def __init__(self, config):
        if getattr(config, "question_global", None) is None:
            architectures = getattr(config, "architectures", None) or ()
            config.question_global = not any(name.endswith("ForQuestionAnswering") for name in architectures)
        super().__init__(config)


class LSGBertForMaskedLM(MaskedLMTaskModel, LSGBertPreTrainedModel):
    encoder_class = LSGBertModel
    _tied_weights_keys = MaskedLMTaskModel.tied_weights("bert")


class LSGBertForSequenceClassification(SequenceClassificationTaskModel, LSGBertPreTrainedModel):
    """dropout -> linear on the pooled first token (which holds global 0's output with pool_with_global)."""

    encoder_class = LSGBertModel
    pooled_head = True


class LSGBertForTokenClassification(TokenClassificationTaskModel, LSGBertPreTrainedModel):
    encoder_class = LSGBertModel


class LSGBertForMultipleChoice(MultipleChoiceTaskModel, LSGBertPreTrainedModel):
    encoder_class = LSGBertModel


class LSGBertForQuestionAnswering(LSGQuestionAnswering, LSGBertPreTrainedModel):
    encoder_class = LSGBertModel


class LSGRobertaForMaskedLM(MaskedLMTaskModel, LSGRobertaPreTrainedModel):
    encoder_class = LSGRobertaModel
    lm_activation = "gelu"
    _tied_weights_keys = MaskedLMTaskModel.tied_weights("roberta")


class LSGRobertaForSequenceClassification(SequenceClassificationTaskModel, LSGRobertaPreTrainedModel):
    """The shared first-token head: dropout -> dense -> tanh -> dropout -> out_proj."""

    encoder_class = LSGRobertaModel
    pooled_head = False


class LSGRobertaForTokenClassification(TokenClassificationTaskModel, LSGRobertaPreTrainedModel):
    encoder_class = LSGRobertaModel


class LSGRobertaForMultipleChoice(MultipleChoiceTaskModel, LSGRobertaPreTrainedModel):
    encoder_class = LSGRobertaModel


class LSGRobertaForQuestionAnswering(LSGQuestionAnswering, LSGRobertaPreTrainedModel):
    encoder_class = LSGRobertaModel


register_weight_names(["LSGBertForMaskedLM"], BERT_LM_HEAD)
