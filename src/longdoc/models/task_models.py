"""Task models shared by the encoder families: masked LM, sequence / token classification,
multiple choice and extractive QA, each = the family's base encoder + one shared head.

A family makes its task classes by mixing one of these with its PreTrainedModel class and
naming its base encoder class (`encoder_class`) and head conventions; forward arguments
follow BERT's order (input_ids, attention_mask, token_type_ids, position_ids, head_mask,
inputs_embeds, labels...). Family-specific inputs (e.g. Longformer's global_attention_mask)
pass through `**encoder_kwargs`.
"""

from __future__ import annotations

from torch import nn

from ..heads import ClassificationHead, LMHead, sequence_classification_loss, span_loss
from .outputs import (
    MaskedLMOutput,
    MultipleChoiceOutput,
    QuestionAnsweringOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)


def output_extras(outputs) -> dict:
    return dict(hidden_states=outputs.hidden_states, attentions=outputs.attentions,
                global_attentions=getattr(outputs, "global_attentions", None))


def as_tuple(loss, heads: tuple, outputs) -> tuple:
    extra = tuple(x for x in output_extras(outputs).values() if x is not None)
    return ((loss,) if loss is not None else ()) + heads + extra


class EncoderTaskModel:
    """Mixin: the family encoder stored under `base_model_prefix`, called with return_dict=True."""

    encoder_class: type = None
    head_dropout_field = "hidden_dropout_prob"

    def _add_encoder(self, config, add_pooling_layer: bool) -> None:
        setattr(self, self.base_model_prefix, self.encoder_class(config, add_pooling_layer=add_pooling_layer))

    def _head_dropout(self, config) -> nn.Dropout:
        rate = getattr(config, "classifier_dropout", None)
        return nn.Dropout(rate if rate is not None else getattr(config, self.head_dropout_field))

    def _encode(self, input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                output_attentions, output_hidden_states, **encoder_kwargs):
        encoder = getattr(self, self.base_model_prefix)
        return encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                       position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
                       output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                       return_dict=True, **encoder_kwargs)

    def _return_dict(self, return_dict) -> bool:
        return self.config.return_dict if return_dict is None else return_dict


class MaskedLMTaskModel(EncoderTaskModel):
    """Shared LM head tied to the word embeddings. `lm_activation` None takes config.hidden_act (BERT);
    RoBERTa's head always uses gelu."""

    lm_activation: str | None = None

    @classmethod
    def tied_weights(cls, prefix: str) -> dict:
        return {"lm_head.decoder.weight": f"{prefix}.embeddings.word_embeddings.weight",
                "lm_head.decoder.bias": "lm_head.bias"}

    def __init__(self, config):
        super().__init__(config)
        self._add_encoder(config, add_pooling_layer=False)
        self.lm_head = LMHead(config, self.lm_activation or config.hidden_act)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **encoder_kwargs):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           output_attentions, output_hidden_states, **encoder_kwargs)
        logits = self.lm_head(out.last_hidden_state)  # (B, T, vocab)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.to(logits.device).view(-1))
        if not self._return_dict(return_dict):
            return as_tuple(loss, (logits,), out)
        return MaskedLMOutput(loss=loss, logits=logits, **output_extras(out))


class SequenceClassificationTaskModel(EncoderTaskModel):
    """`pooled_head` True: dropout -> linear on the pooler output (BERT); False: the shared
    ClassificationHead on the first token (RoBERTa, Longformer). Loss by `config.problem_type`."""

    pooled_head = True

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._add_encoder(config, add_pooling_layer=self.pooled_head)
        if self.pooled_head:
            self.dropout = self._head_dropout(config)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        else:
            self.classifier = ClassificationHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **encoder_kwargs):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           output_attentions, output_hidden_states, **encoder_kwargs)
        if self.pooled_head:
            logits = self.classifier(self.dropout(out.pooler_output))
        else:
            logits = self.classifier(out.last_hidden_state)
        loss = None if labels is None else sequence_classification_loss(logits, labels, self.config)
        if not self._return_dict(return_dict):
            return as_tuple(loss, (logits,), out)
        return SequenceClassifierOutput(loss=loss, logits=logits, **output_extras(out))


class TokenClassificationTaskModel(EncoderTaskModel):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._add_encoder(config, add_pooling_layer=False)
        self.dropout = self._head_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **encoder_kwargs):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           output_attentions, output_hidden_states, **encoder_kwargs)
        logits = self.classifier(self.dropout(out.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.to(logits.device).view(-1))
        if not self._return_dict(return_dict):
            return as_tuple(loss, (logits,), out)
        return TokenClassifierOutput(loss=loss, logits=logits, **output_extras(out))


class QuestionAnsweringTaskModel(EncoderTaskModel):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._add_encoder(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **encoder_kwargs):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           output_attentions, output_hidden_states, **encoder_kwargs)
        logits = self.qa_outputs(out.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = (x.squeeze(-1).contiguous() for x in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        if not self._return_dict(return_dict):
            return as_tuple(loss, (start_logits, end_logits), out)
        return QuestionAnsweringOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                       **output_extras(out))


class MultipleChoiceTaskModel(EncoderTaskModel):
    """Inputs (B, choices, T); one score per choice from the pooled first token."""

    def __init__(self, config):
        super().__init__(config)
        self._add_encoder(config, add_pooling_layer=True)
        self.dropout = self._head_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **encoder_kwargs):
        ref = input_ids if input_ids is not None else inputs_embeds[..., 0]
        if ref.dim() != 3:
            raise ValueError(f"multiple choice inputs must be (batch, choices, tokens), got {tuple(ref.shape)}")
        num_choices = ref.shape[1]
        flat = lambda x: None if x is None else x.reshape(-1, *x.shape[2:])  # (B * choices, ...)
        encoder_kwargs = {name: flat(value) for name, value in encoder_kwargs.items()}
        out = self._encode(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                           head_mask, flat(inputs_embeds), output_attentions, output_hidden_states, **encoder_kwargs)
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, num_choices)  # (B, choices)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.to(logits.device))
        if not self._return_dict(return_dict):
            return as_tuple(loss, (logits,), out)
        return MultipleChoiceOutput(loss=loss, logits=logits, **output_extras(out))
