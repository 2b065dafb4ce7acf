"""LSG for MPNet checkpoints: RoBERTa-style positions, no token types, and MPNet's relative position
bias carried into LSG attention (see attention/lsg_bias.py for what a sparse or global key's
distance is). lsg-converter has no MPNet model: these classes are longdoc's own, with MPNet's
published weight names (`attention.attn.q`, `encoder.relative_attention_bias`...)."""

from __future__ import annotations

from torch import nn
from transformers import MPNetConfig
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

from ..attention.lsg_bias import LSGPositionBias, block_offsets, fallback_offsets, with_global_zeros
from ..attention.lsg_pattern import LSGPattern
from .lsg import LSGEncoder, LSGEncoderModel, LSGPreTrainedModel, init_lsg_fields, validate_lsg_fields
from .task_models import (
    MaskedLMTaskModel,
    MultipleChoiceTaskModel,
    QuestionAnsweringTaskModel,
    SequenceClassificationTaskModel,
    TokenClassificationTaskModel,
)
from .weight_names import register_weight_names

MPNET_LAYER = (
    (r"\.attention\.attn\.q\.", ".attention.self.query."),
    (r"\.attention\.attn\.k\.", ".attention.self.key."),
    (r"\.attention\.attn\.v\.", ".attention.self.value."),
    (r"\.attention\.attn\.o\.", ".attention.output.dense."),
    (r"\.attention\.LayerNorm\.", ".attention.output.LayerNorm."),
)


class LSGMPNetConfig(MPNetConfig):
    """MPNet config + the LSG fields of LSGBertConfig."""

    model_type = "mpnet"

    def __init__(self, **kwargs):
        kwargs = init_lsg_fields(self, kwargs)
        super().__init__(**kwargs)
        validate_lsg_fields(self)


class LSGMPNetEncoder(LSGEncoder):
    def __init__(self, config):
        super().__init__(config)
        self.num_global_tokens = config.num_global_tokens
        self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_attention_heads)

    def _bias(self, offsets):
        buckets = MPNetEncoder.relative_position_bucket(offsets, num_buckets=self.relative_attention_bias.num_embeddings)
        return self.relative_attention_bias(buckets.to(self.relative_attention_bias.weight.device)).permute(2, 0, 1)

    def attention_inputs(self, pattern: LSGPattern) -> dict:
        geo = pattern.geometry
        if geo.uses_full_attention(pattern.length):
            full = with_global_zeros(self._bias(fallback_offsets(pattern.length)), geo.num_global_tokens, rows=True)
            return {"pattern": pattern, "position_bias": LSGPositionBias(full=full)}
        blocks = with_global_zeros(self._bias(block_offsets(pattern)), geo.num_global_tokens, rows=False)
        return {"pattern": pattern, "position_bias": LSGPositionBias(blocks=blocks)}


class LSGMPNetPreTrainedModel(LSGPreTrainedModel):
    config_class = LSGMPNetConfig
    base_model_prefix = "mpnet"


class LSGMPNetModel(LSGEncoderModel, LSGMPNetPreTrainedModel):
    config_class = LSGMPNetConfig
    base_model_prefix = "mpnet"
    roberta_positions = True
    token_types = False
    encoder_module = LSGMPNetEncoder
    supports_question_global = False  # question slots would lose MPNet's relative position bias


class LSGMPNetForMaskedLM(MaskedLMTaskModel, LSGMPNetPreTrainedModel):
    encoder_class = LSGMPNetModel
    lm_activation = "gelu"
    _tied_weights_keys = MaskedLMTaskModel.tied_weights("mpnet")


class LSGMPNetForSequenceClassification(SequenceClassificationTaskModel, LSGMPNetPreTrainedModel):
    encoder_class = LSGMPNetModel
    pooled_head = False


class LSGMPNetForTokenClassification(TokenClassificationTaskModel, LSGMPNetPreTrainedModel):
    encoder_class = LSGMPNetModel


class LSGMPNetForMultipleChoice(MultipleChoiceTaskModel, LSGMPNetPreTrainedModel):
    encoder_class = LSGMPNetModel


class LSGMPNetForQuestionAnswering(QuestionAnsweringTaskModel, LSGMPNetPreTrainedModel):
    encoder_class = LSGMPNetModel


register_weight_names(
    ["LSGMPNetModel", "LSGMPNetForMaskedLM", "LSGMPNetForSequenceClassification", "LSGMPNetForTokenClassification",
     "LSGMPNetForMultipleChoice", "LSGMPNetForQuestionAnswering"],
    MPNET_LAYER,
)
