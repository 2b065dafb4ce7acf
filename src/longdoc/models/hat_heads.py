"""HAT task models, with the reference's class names, forward arguments and outputs.

Heads read the segments' first tokens: a pooler (max / first / last / attentive over them, then
dense -> tanh) for document classification and multiple choice, a `sentencizer` (dense -> tanh on
every one) for sequential sentence classification; the shared LM head, token and span heads read
every token. Fixed from the reference: token classification and QA construct, multiple choice
pools the last segment whatever the segment size, the pooling choice is kept in the config (so a
saved attentive pooler reloads as attentive), and tuples (`return_dict=False`) keep hidden states.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..heads import LMHead, sequence_classification_loss, span_loss
from .hat import BaseModelOutputWithSentenceAttentions, HATModel, HATPreTrainedModel
from .hat_config import POOLINGS
from .outputs import MaskedLMOutput, MultipleChoiceOutput, QuestionAnsweringOutput, TokenClassifierOutput
from transformers.utils import ModelOutput


@dataclass
class HATOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor | None, ...] | None = None
    sentence_attentions: tuple[torch.Tensor | None, ...] | None = None


SequenceClassifierOutput = HATOutput
SentenceClassifierOutput = HATOutput


class AttentivePooling(nn.Module):
    """A learned softmax over the segments (every slot, as the reference, or only the real ones)."""

    def __init__(self, config):
        super().__init__()
        self.lin_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v = nn.Linear(config.hidden_size, 1, bias=False)

    def forward(self, heads: torch.Tensor, real_segments: torch.Tensor | None = None) -> torch.Tensor:
        scores = torch.tanh(self.v(self.lin_proj(heads))).squeeze(-1)  # (B, N)
        if real_segments is not None:
            scores = scores.masked_fill(~real_segments, float("-inf"))
        weights = scores.softmax(-1)
        return (weights.unsqueeze(-1) * heads).sum(1)  # (B, C)


class HATPooler(nn.Module):
    """One document vector from the segments' first tokens, then dense -> tanh."""

    def __init__(self, config, pooling: str):
        super().__init__()
        self.pooling = pooling
        self.segment_size = config.max_sentence_size
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        if pooling == "attentive":
            self.attentive_pooling = AttentivePooling(config)

    def forward(self, sequence: torch.Tensor, real_segments: torch.Tensor | None = None) -> torch.Tensor:
        """sequence (B, N * L, C); real_segments (B, N) bool to pool only those (None: every slot)."""
        return self.pool_heads(sequence[:, :: self.segment_size], real_segments)

    def pool_heads(self, heads: torch.Tensor, real_segments: torch.Tensor | None = None) -> torch.Tensor:
        """The same from the segments' first tokens alone, heads (B, N, C)."""
        if self.pooling == "first":
            pooled = heads[:, 0]
        elif self.pooling == "last":
            if real_segments is None:
                pooled = heads[:, -1]  # the last slot of the padded input
            else:  # the running count of real segments first peaks at the last real one
                pooled = heads[torch.arange(heads.shape[0]), real_segments.long().cumsum(1).argmax(1)]
        elif self.pooling == "attentive":
            pooled = self.attentive_pooling(heads, real_segments)
        else:
            if real_segments is not None:
                heads = heads.masked_fill(~real_segments[..., None], torch.finfo(heads.dtype).min)
            pooled = heads.max(dim=1).values
        return torch.tanh(self.dense(pooled))  # (B, C)


def real_segments(config, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, N) bool of the segments with a real first token, when the config pools only those."""
    if config.pool_empty_segments or attention_mask is None:
        return None
    return attention_mask[:, :: config.max_sentence_size] != 0


class HATSentencizer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.segment_size = config.max_sentence_size
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(sequence[:, :: self.segment_size]))  # (B, N, C)


def _pooling(config, pooling: str | None, default: str) -> str:
    """The constructor's choice, else the config's, else the head's default; kept in the config."""
    pooling = pooling or config.segment_pooling or default
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    config.segment_pooling = pooling
    return pooling


def _dropout(config) -> nn.Dropout:
    rate = config.classifier_dropout
    return nn.Dropout(rate if rate is not None else config.hidden_dropout_prob)


def _result(return_dict, config, output_class, loss, heads: dict, out):
    extras = dict(hidden_states=out.hidden_states, attentions=out.attentions)
    if "sentence_attentions" in output_class.__dataclass_fields__:
        extras["sentence_attentions"] = out.sentence_attentions
    if not (config.return_dict if return_dict is None else return_dict):
        values = ((loss,) if loss is not None else ()) + tuple(heads.values())
        return values + tuple(v for v in extras.values() if v is not None)
    return output_class(loss=loss, **heads, **extras)


class _HATTask(HATPreTrainedModel):
    def _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                output_attentions, output_hidden_states):
        return self.hi_transformer(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   position_ids=position_ids, inputs_embeds=inputs_embeds,
                                   output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                                   return_dict=True)


class HATForMaskedLM(_HATTask):
    _tied_weights_keys = {"lm_head.decoder.weight": "hi_transformer.embeddings.word_embeddings.weight",
                          "lm_head.decoder.bias": "lm_head.bias"}

    def __init__(self, config):
        super().__init__(config)
        self.hi_transformer = HATModel(config)
        self.lm_head = LMHead(config, "gelu")
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_attentions, output_hidden_states)
        logits = self.lm_head(out.last_hidden_state)  # (B, T, vocab)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.to(logits.device).view(-1))
        return _result(return_dict, self.config, MaskedLMOutput, loss, {"logits": logits}, out)


class HATForSequenceClassification(_HATTask):
    """Pooled segments -> dropout -> linear; single-label, multi-label or regression by `problem_type`."""

    default_pooling = "max"

    def __init__(self, config, pooling: str | None = None):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.pooling = _pooling(config, pooling, self.default_pooling)
        self.hi_transformer = HATModel(config)
        self.pooler = HATPooler(config, self.pooling)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                segment_states=None, segment_mask=None):
        """`segment_states` (B, N, C), the segments' first tokens from the encoder's last layer, with
        `segment_mask` (B, N): the head alone on cached encoder outputs (longdoc's head warm-up)."""
        if segment_states is not None:
            real = None if self.config.pool_empty_segments else segment_mask
            out = BaseModelOutputWithSentenceAttentions()
            pooled = self.pooler.pool_heads(segment_states, real)
        else:
            out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                               output_attentions, output_hidden_states)
            pooled = self.pooler(out.last_hidden_state, real_segments(self.config, attention_mask))
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)
        loss = None if labels is None else sequence_classification_loss(logits, labels, self.config)
        return _result(return_dict, self.config, SequenceClassifierOutput, loss, {"logits": logits}, out)


class HATForSequentialSentenceClassification(_HATTask):
    """One label per segment. Single-label: labels (B, N), -100 ignored; multi-label: labels
    (B, N, num_labels) 0/1, rows of -1 (empty segments) ignored."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hi_transformer = HATModel(config)
        self.sentencizer = HATSentencizer(config)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        config = self.config
        if config.problem_type is None:
            config.problem_type = ("regression" if self.num_labels == 1 else "single_label_classification"
                                   if labels.dtype in (torch.long, torch.int) else "multi_label_classification")
        labels = labels.to(logits.device)
        if config.problem_type == "multi_label_classification":
            if labels.shape != logits.shape:
                raise ValueError(f"multi-label labels must have the logits' shape {tuple(logits.shape)} (segments x "
                                 f"labels), got {tuple(labels.shape)}")
            keep = labels[:, :, 0] != -1  # (B, N)
            return F.binary_cross_entropy_with_logits(logits[keep], labels[keep].to(logits.dtype))
        if config.problem_type == "regression":
            return F.mse_loss(logits.view(-1), labels.view(-1).to(logits.dtype))
        return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(self.sentencizer(out.last_hidden_state)))  # (B, N, num_labels)
        loss = None if labels is None else self.loss(logits, labels)
        return _result(return_dict, self.config, SentenceClassifierOutput, loss, {"logits": logits}, out)


HATModelForSequentialSentenceClassification = HATForSequentialSentenceClassification  # the reference's name


class HATForMultipleChoice(_HATTask):
    """Inputs (B, choices, N * L); each choice pooled (default: its last segment) -> one score."""

    default_pooling = "last"

    def __init__(self, config, pooling: str | None = None):
        super().__init__(config)
        self.pooling = _pooling(config, pooling, self.default_pooling)
        self.hi_transformer = HATModel(config)
        self.pooler = HATPooler(config, self.pooling)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, labels=None, position_ids=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        ref = input_ids if input_ids is not None else (inputs_embeds[..., 0] if inputs_embeds is not None else None)
        if ref is None or ref.dim() != 3:
            raise ValueError("multiple choice inputs must be (batch, choices, tokens)")
        num_choices = ref.shape[1]
        flat = lambda x: None if x is None else x.reshape(-1, *x.shape[2:])  # (B * choices, ...)
        out = self._encode(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                           flat(inputs_embeds), output_attentions, output_hidden_states)
        pooled = self.pooler(out.last_hidden_state, real_segments(self.config, flat(attention_mask)))
        logits = self.classifier(self.dropout(pooled)).view(-1, num_choices)
        loss = None if labels is None else F.cross_entropy(logits, labels.to(logits.device))
        return _result(return_dict, self.config, MultipleChoiceOutput, loss, {"logits": logits}, out)


class HATForTokenClassification(_HATTask):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hi_transformer = HATModel(config)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(out.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.to(logits.device).view(-1))
        return _result(return_dict, self.config, TokenClassifierOutput, loss, {"logits": logits}, out)


class HATForQuestionAnswering(_HATTask):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hi_transformer = HATModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        if head_mask is not None:
            raise ValueError("head_mask is not supported by HAT: leave it None")
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_attentions, output_hidden_states)
        logits = self.qa_outputs(out.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = (x.squeeze(-1).contiguous() for x in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return _result(return_dict, self.config, QuestionAnsweringOutput, loss,
                       {"start_logits": start_logits, "end_logits": end_logits}, out)


def _register_auto_classes() -> None:
    """`AutoConfig` / `AutoModel*` read `model_type: "hierarchical-transformer"` as these classes
    (the published checkpoints' own `auto_map` needs remote code; this needs none)."""
    from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForMultipleChoice,
                              AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                              AutoModelForTokenClassification)

    from .hat_config import HATConfig

    AutoConfig.register(HATConfig.model_type, HATConfig, exist_ok=True)
    for auto, cls in ((AutoModel, HATModel), (AutoModelForMaskedLM, HATForMaskedLM),
                      (AutoModelForSequenceClassification, HATForSequenceClassification),
                      (AutoModelForMultipleChoice, HATForMultipleChoice),
                      (AutoModelForTokenClassification, HATForTokenClassification),
                      (AutoModelForQuestionAnswering, HATForQuestionAnswering)):
        auto.register(HATConfig, cls, exist_ok=True)


_register_auto_classes()
