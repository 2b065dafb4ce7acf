"""Longformer task models: masked LM, sequence / token classification, multiple choice, QA.

Each is the shared task model (task_models.py) over LongformerModel; what is Longformer's own is
the argument order of `forward` (global_attention_mask third, as in `transformers`) and the
default global attention of each task when the caller gives none (a caller's
`global_attention_mask` always wins).
"""

from __future__ import annotations

import torch

from .longformer import LongformerModel, LongformerPreTrainedModel
from .pair_inputs import first_separator, question_mask
from .task_models import (
    MaskedLMTaskModel,
    MultipleChoiceTaskModel,
    QuestionAnsweringTaskModel,
    SequenceClassificationTaskModel,
    TokenClassificationTaskModel,
)


def question_global_mask(input_ids: torch.Tensor, sep_token_id: int) -> torch.Tensor:
    """QA default: global attention on every token before the first separator (the question)."""
    return question_mask(input_ids, sep_token_id)


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


class LongformerForMaskedLM(MaskedLMTaskModel, LongformerPreTrainedModel):
    encoder_class = LongformerModel
    lm_activation = "gelu"
    _tied_weights_keys = MaskedLMTaskModel.tied_weights("longformer")

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=return_dict, global_attention_mask=global_attention_mask)


class LongformerForSequenceClassification(SequenceClassificationTaskModel, LongformerPreTrainedModel):
    """Single-label, multi-label or regression through `config.problem_type`; global attention on
    the first token by default."""

    encoder_class = LongformerModel
    pooled_head = False

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        if global_attention_mask is None:
            global_attention_mask = _first_token_global_mask(input_ids, inputs_embeds)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=return_dict, global_attention_mask=global_attention_mask)


class LongformerForTokenClassification(TokenClassificationTaskModel, LongformerPreTrainedModel):
    """Per-token labels; no global attention by default."""

    encoder_class = LongformerModel

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=return_dict, global_attention_mask=global_attention_mask)


class LongformerForQuestionAnswering(QuestionAnsweringTaskModel, LongformerPreTrainedModel):
    """Extractive QA; global attention on the question by default: every token before the first
    separator, in BERT pairs (`[CLS] q [SEP] c [SEP]`) as in RoBERTa ones (`transformers`' own default
    accepts only the latter, asserting three separators)."""

    encoder_class = LongformerModel

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, start_positions=None, end_positions=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        if global_attention_mask is None:
            if input_ids is None:
                raise ValueError("question answering from inputs_embeds needs an explicit global_attention_mask")
            global_attention_mask = question_global_mask(input_ids, self.config.sep_token_id)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               position_ids=position_ids, inputs_embeds=inputs_embeds,
                               start_positions=start_positions, end_positions=end_positions,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=return_dict, global_attention_mask=global_attention_mask)


class LongformerForMultipleChoice(MultipleChoiceTaskModel, LongformerPreTrainedModel):
    """Inputs (B, choices, T); one score per choice from the pooled first token; global attention
    on each choice's tokens (after the context's separator) by default."""

    encoder_class = LongformerModel

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, global_attention_mask=None,
                labels=None, position_ids=None, inputs_embeds=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        if global_attention_mask is None and input_ids is not None and input_ids.dim() == 3:
            flat = input_ids.reshape(-1, input_ids.shape[-1])
            global_attention_mask = after_separator_global_mask(flat, self.config.sep_token_id).view(input_ids.shape)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=return_dict, global_attention_mask=global_attention_mask)
