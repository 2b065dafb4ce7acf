"""Longformer task models: masked LM, sequence / token classification, multiple choice, QA.

Each sets the default global attention of its task when the caller gives none
(a caller's `global_attention_mask` always wins).
"""

from __future__ import annotations

import torch
from torch import nn

from ..heads import ClassificationHead, LMHead, sequence_classification_loss, span_loss
from .longformer import LongformerModel, LongformerPreTrainedModel
from .outputs import (
    MaskedLMOutput,
    MultipleChoiceOutput,
    QuestionAnsweringOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)


def first_separator(input_ids: torch.Tensor, sep_token_id: int, task: str) -> torch.Tensor:
    """(B,) index of the first separator in every row; a row without one is an error."""
    if sep_token_id is None:
        raise ValueError(f"{task} needs config.sep_token_id to place global attention, or a global_attention_mask")
    is_sep = input_ids == sep_token_id
    missing = (~is_sep.any(dim=1)).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"{task}: rows {missing} have no separator token (id {sep_token_id}); encode the input as a pair "
            f"(question/context or context/choice) with the tokenizer, or pass global_attention_mask yourself"
        )
    return is_sep.int().argmax(dim=1)


def question_global_mask(input_ids: torch.Tensor, sep_token_id: int) -> torch.Tensor:
    """QA default: global attention on every token before the first separator (the question)."""
    first = first_separator(input_ids, sep_token_id, "question answering")
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (pos[None, :] < first[:, None]).long()


def after_separator_global_mask(input_ids: torch.Tensor, sep_token_id: int) -> torch.Tensor:
    """Multiple-choice default: global attention after the separator run that follows the context
    (`</s></s>` in RoBERTa pairs, a single `[SEP]` in BERT pairs)."""
    first = first_separator(input_ids, sep_token_id, "multiple choice")
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)
    not_sep_after = (pos[None, :] > first[:, None]) & (input_ids != sep_token_id)
    run_end = not_sep_after.int().argmax(dim=1)  # first non-separator after the first separator
    return (pos[None, :] >= run_end[:, None]).long()


def _first_token_global_mask(input_ids, inputs_embeds):
    ref = input_ids if input_ids is not None else inputs_embeds[..., 0]
    mask = torch.zeros(ref.shape, dtype=torch.long, device=ref.device)
    mask[:, 0] = 1
    return mask


def _extras(outputs):
    return dict(hidden_states=outputs.hidden_states, attentions=outputs.attentions,
                global_attentions=outputs.global_attentions)


def _as_tuple(loss, heads: tuple, outputs) -> tuple:
    extra = tuple(x for x in (outputs.hidden_states, outputs.attentions, outputs.global_attentions) if x is not None)
    return ((loss,) if loss is not None else ()) + heads + extra


class LongformerForMaskedLM(LongformerPreTrainedModel):
    _tied_weights_keys = {
        "lm_head.decoder.weight": "longformer.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }

    def __init__(self, config):
        super().__init__(config)
        self.longformer = LongformerModel(config, add_pooling_layer=False)
        self.lm_head = LMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        out = self.longformer(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                              inputs_embeds, output_attentions, output_hidden_states, return_dict=True)
        logits = self.lm_head(out.last_hidden_state)  # (B, T, vocab)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.to(logits.device).view(-1))
        if not return_dict:
            return _as_tuple(loss, (logits,), out)
        return MaskedLMOutput(loss=loss, logits=logits, **_extras(out))


class LongformerForSequenceClassification(LongformerPreTrainedModel):
    """Single-label, multi-label or regression through `config.problem_type`; global attention on
    the first token by default."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.longformer = LongformerModel(config, add_pooling_layer=False)
        self.classifier = ClassificationHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if global_attention_mask is None:
            global_attention_mask = _first_token_global_mask(input_ids, inputs_embeds)
        out = self.longformer(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                              inputs_embeds, output_attentions, output_hidden_states, return_dict=True)
        logits = self.classifier(out.last_hidden_state)
        loss = None if labels is None else sequence_classification_loss(logits, labels, self.config)
        if not return_dict:
            return _as_tuple(loss, (logits,), out)
        return SequenceClassifierOutput(loss=loss, logits=logits, **_extras(out))


class LongformerForTokenClassification(LongformerPreTrainedModel):
    """Per-token labels; no global attention by default."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.longformer = LongformerModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        out = self.longformer(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                              inputs_embeds, output_attentions, output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(out.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.to(logits.device).view(-1))
        if not return_dict:
            return _as_tuple(loss, (logits,), out)
        return TokenClassifierOutput(loss=loss, logits=logits, **_extras(out))


class LongformerForQuestionAnswering(LongformerPreTrainedModel):
    """Extractive QA; global attention on the question (tokens before the first separator)."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.longformer = LongformerModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, start_positions=None, end_positions=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if global_attention_mask is None:
            if input_ids is None:
                raise ValueError("question answering from inputs_embeds needs an explicit global_attention_mask")
            global_attention_mask = question_global_mask(input_ids, self.config.sep_token_id)
        out = self.longformer(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                              inputs_embeds, output_attentions, output_hidden_states, return_dict=True)
        logits = self.qa_outputs(out.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = (x.squeeze(-1).contiguous() for x in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        if not return_dict:
            return _as_tuple(loss, (start_logits, end_logits), out)
        return QuestionAnsweringOutput(loss=loss, start_logits=start_logits, end_logits=end_logits, **_extras(out))


class LongformerForMultipleChoice(LongformerPreTrainedModel):
    """Inputs (B, choices, T); one score per choice from the pooled first token; global attention
    on each choice's tokens (after the context's separator) by default."""

    def __init__(self, config):
        super().__init__(config)
        self.longformer = LongformerModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, global_attention_mask=None,
                labels=None, position_ids=None, inputs_embeds=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        ref = input_ids if input_ids is not None else inputs_embeds[..., 0]
        if ref.dim() != 3:
            raise ValueError(f"multiple choice inputs must be (batch, choices, tokens), got {tuple(ref.shape)}")
        num_choices = ref.shape[1]
        flat = lambda x: None if x is None else x.reshape(-1, *x.shape[2:])  # (B * choices, ...)
        if global_attention_mask is None and input_ids is not None:
            global_attention_mask = after_separator_global_mask(flat(input_ids), self.config.sep_token_id)
        else:
            global_attention_mask = flat(global_attention_mask)
        out = self.longformer(flat(input_ids), flat(attention_mask), global_attention_mask, flat(token_type_ids),
                              flat(position_ids), flat(inputs_embeds), output_attentions, output_hidden_states,
                              return_dict=True)
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, num_choices)  # (B, choices)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.to(logits.device))
        if not return_dict:
            return _as_tuple(loss, (logits,), out)
        return MultipleChoiceOutput(loss=loss, logits=logits, **_extras(out))
