"""LSG encoders for BERT- and RoBERTa-family checkpoints (Condevaux & Harispe 2022).

Config fields, weight names, forward arguments and outputs are those of the `lsg-converter`
package's `LSGBert*` / `LSGRoberta*` classes, so its checkpoints (the `ccdv/lsg-*` layouts)
load unchanged and what we save loads there. The layer is the shared `EncoderLayer` with LSG
self-attention plugged in; task models are in `lsg_heads.py`.

Pipeline of one forward pass: embeddings -> `num_global_tokens` learned global embeddings
prepended -> LayerNorm/dropout -> inputs longer than two blocks padded to a multiple of
`block_size` (`adaptive`) -> layers -> `pool_with_global` copies global 0's output onto the
first token -> globals and padding cropped.

`question_global` (longdoc's own field, BERT and RoBERTa; off unless set, so lsg-converter
checkpoints behave as there): the question of a pair encoding (every token before the first
separator) is attended globally. Its tokens are copied into extra global slots after the learned
globals, where they attend to every token and every token attends to them; their places in the
token sequence are masked as keys (so nothing is attended twice) and take the slots' outputs at
the end.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from transformers import BertConfig, PreTrainedModel, RobertaConfig

from ..attention.lsg import lsg_attention
from ..attention.lsg_pattern import LSGGeometry, LSGPattern, MAX_GLOBAL_TOKENS
from .layers import EncoderLayer, HeadProjections, Pooler, input_shape, roberta_position_ids
from .outputs import EncoderOutput
from .pair_inputs import question_mask as question_mask_of

LSG_DEFAULTS = dict(adaptive=True, block_size=128, lsh_num_pre_rounds=1, mask_first_token=False, num_global_tokens=1,
                    pool_with_global=True, sparse_block_size=128, sparsity_factor=2, sparsity_type="norm")


def init_lsg_fields(config, kwargs: dict) -> dict:
    """Pop the LSG fields from `kwargs` onto `config` (before the base config sees the rest)."""
    for name, default in LSG_DEFAULTS.items():
        setattr(config, name, kwargs.pop(name, default))
    kwargs.pop("base_model_prefix", None)  # lsg-converter stores "lsg" here; the class attribute decides
    return kwargs


def validate_lsg_fields(config) -> LSGGeometry:
    """Raise ValueError on settings LSG cannot run (lsg-converter would warn and silently change them)."""
    if config.mask_first_token and not config.pool_with_global:
        raise ValueError(
            "mask_first_token=True needs pool_with_global=True (the first token's output is taken from global 0): "
            "set pool_with_global=True or mask_first_token=False"
        )
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        raise ValueError(
            f"LSG attention needs absolute positions, got position_embedding_type={config.position_embedding_type!r}"
        )
    heads = config.num_attention_heads
    if config.hidden_size % heads:
        raise ValueError(f"hidden_size ({config.hidden_size}) must be a multiple of num_attention_heads ({heads})")
    return lsg_geometry(config)


def lsg_geometry(config) -> LSGGeometry:
    return LSGGeometry(config.block_size, config.sparse_block_size, config.sparsity_factor, config.sparsity_type,
                       config.num_global_tokens, config.lsh_num_pre_rounds)


def init_question_fields(config, kwargs: dict) -> dict:
    """`question_global` (None: unset, read as off; QA models built by longdoc set it) and the
    `sep_token_id` that finds the question (transformers 5's BERT config has no such field)."""
    config.question_global = kwargs.pop("question_global", None)
    config.sep_token_id = kwargs.pop("sep_token_id", None)
    return kwargs


class LSGBertConfig(BertConfig):
    """BERT config + LSG fields: block_size, sparse_block_size, sparsity_factor, sparsity_type
    (norm, pooling, lsh, stride, block_stride, bos_pooling, none), num_global_tokens, adaptive,
    mask_first_token, pool_with_global, lsh_num_pre_rounds; and longdoc's question_global (with
    sep_token_id)."""

    model_type = "bert"

    def __init__(self, **kwargs):
        kwargs = init_question_fields(self, init_lsg_fields(self, kwargs))
        super().__init__(**kwargs)
        validate_lsg_fields(self)


class LSGRobertaConfig(RobertaConfig):
    """RoBERTa config + the LSG fields of `LSGBertConfig`."""

    model_type = "roberta"

    def __init__(self, **kwargs):
        kwargs = init_question_fields(self, init_lsg_fields(self, kwargs))
        super().__init__(**kwargs)
        validate_lsg_fields(self)


class LSGEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then the global embeddings prepended, then LayerNorm.

    `roberta_positions`: positions count real tokens from pad_token_id + 1 (RoBERTa) instead of 0 (BERT).
    """

    def __init__(self, config, roberta_positions: bool, token_types: bool = True):
        super().__init__()
        self.config = config
        self.roberta_positions = roberta_positions
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size,
                                                padding_idx=config.pad_token_id if roberta_positions else None)
        # MPNet has no token types
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size) if token_types else None
        self.global_embeddings = nn.Embedding(MAX_GLOBAL_TOKENS, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    @property
    def max_tokens(self) -> int:
        offset = self.padding_idx + 1 if self.roberta_positions else 0
        return self.config.max_position_embeddings - offset

    def position_ids(self, input_ids, shape, device) -> torch.Tensor:
        if not self.roberta_positions:
            return torch.arange(shape[1], device=device).expand(shape)
        return roberta_position_ids(input_ids, shape, self.padding_idx, device)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if shape[1] > self.max_tokens:
            raise ValueError(
                f"input of {shape[1]} tokens is longer than this model's {self.max_tokens} positions: truncate it, or "
                f"convert to a longer model: `longdoc convert --to lsg SRC OUT --max-length {shape[1]}`"
            )
        if position_ids is None:
            position_ids = self.position_ids(input_ids, shape, device)
        if inputs_embeds is None:
            if input_ids.numel() and (int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0):
                raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}): check that the tokenizer "
                                 f"matches this model")
            inputs_embeds = self.word_embeddings(input_ids)
        x = inputs_embeds + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(shape, dtype=torch.long, device=device)
            x = x + self.token_type_embeddings(token_type_ids)
        elif token_type_ids is not None and bool(token_type_ids.any()):
            raise ValueError("this model has no token types: leave token_type_ids out (or all zero)")
        glob = self.global_embeddings.weight[: self.config.num_global_tokens]  # (G, C)
        x = torch.cat([glob[None].expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)  # (B, G + T, C)
        return self.dropout(self.LayerNorm(x))


class LSGSelfAttention(HeadProjections):
    """`lsg_attention` on the Q/K/V projections."""

    def forward(self, hidden_states: torch.Tensor, pattern: LSGPattern, position_bias=None):
        q, k, v = self.project(hidden_states)  # (B, H, G + T, D)
        out = lsg_attention(q, k, v, pattern, self.dropout if self.training else 0.0, position_bias)
        return (out.transpose(1, 2).reshape(hidden_states.shape),)  # (B, G + T, C)


def encoder_pattern(config, geometry: LSGGeometry, is_token: torch.Tensor, globals_visible: bool = True) -> LSGPattern:
    """The pattern of one batch: `adaptive` padding to a multiple of the block, `mask_first_token`."""
    length = is_token.shape[1]
    padded = geometry.padded_length(length, config.adaptive)
    is_key = nn.functional.pad(is_token, (0, padded - length), value=False)
    if config.mask_first_token:
        is_key = is_key.clone()
        is_key[:, 0] = False
    return LSGPattern(geometry, is_key, globals_visible)


def with_question_globals(pattern: LSGPattern, question: torch.Tensor) -> LSGPattern:
    """The pattern with the question tokens (`question` (B, T) bool, a prefix of every row) as extra
    global tokens after the learned ones: one slot per token of the batch's longest question, visible
    where the row has a question token there that may be attended; the tokens themselves masked as keys."""
    count = int(question.sum(dim=1).max()) if question.numel() else 0
    if count == 0:
        return pattern
    geometry = pattern.geometry
    if geometry.num_global_tokens + count > MAX_GLOBAL_TOKENS:
        raise ValueError(
            f"question_global: a question of {count} tokens and {geometry.num_global_tokens} global tokens exceed "
            f"the {MAX_GLOBAL_TOKENS} global slots LSG attention supports; shorten the question"
        )
    in_question = nn.functional.pad(question, (0, pattern.length - question.shape[1]), value=False)
    slots = pattern.is_key[:, :count] & in_question[:, :count]
    visible = torch.cat([pattern.global_key_mask(), slots], dim=1)
    return LSGPattern(replace(geometry, num_global_tokens=geometry.num_global_tokens + count),
                      pattern.is_key & ~in_question, visible)


def question_into_slots(hidden: torch.Tensor, g: int, slots: int) -> torch.Tensor:
    """(B, G + T, C) -> (B, G + slots + T, C): the first `slots` tokens (the longest question) copied after
    the G learned globals."""
    return torch.cat([hidden[:, :g], hidden[:, g:g + slots], hidden[:, g:]], dim=1)


def question_from_slots(hidden: torch.Tensor, g: int, question: torch.Tensor) -> torch.Tensor:
    """(B, G + slots + T, C) -> (B, G + T, C): each question token takes its slot's output (the masked copy
    left among the tokens only attended locally)."""
    slots = int(question.sum(dim=1).max())  # as many as with_question_globals made
    in_slot = question[:, :slots, None]
    first = torch.where(in_slot, hidden[:, g:g + slots], hidden[:, g + slots:g + 2 * slots])
    return torch.cat([hidden[:, :g], first, hidden[:, g + 2 * slots:]], dim=1)


def pool_and_crop(hidden: torch.Tensor, config, length: int, keep_globals: bool = False) -> torch.Tensor:
    """`pool_with_global`: global 0's output replaces the first token's; then drop globals and padding."""
    g = config.num_global_tokens
    if keep_globals:
        return hidden[:, : g + length]
    if config.pool_with_global:
        hidden = torch.cat([hidden[:, :g], hidden[:, :1], hidden[:, g + 1:]], dim=1)
    return hidden[:, g: g + length]


class LSGEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([EncoderLayer(config, LSGSelfAttention(config)) for _ in
                                    range(config.num_hidden_layers)])

    def attention_inputs(self, pattern: LSGPattern) -> dict:
        """What every layer's attention takes besides the hidden states (a family may add a position bias)."""
        return {"pattern": pattern}

    def forward(self, hidden_states, pattern: LSGPattern, output_hidden_states=False):
        """hidden_states (B, G + T_padded, C) -> last states and, optionally, every layer's input and output."""
        all_hidden = (hidden_states,) if output_hidden_states else None
        inputs = self.attention_inputs(pattern)
        for layer in self.layer:
            hidden_states = layer(hidden_states, **inputs)[0]
            if output_hidden_states:
                all_hidden += (hidden_states,)
        return hidden_states, all_hidden


def check_inputs(input_ids, inputs_embeds, head_mask, masks: dict) -> tuple:
    shape = input_shape(input_ids, inputs_embeds, masks)
    if head_mask is not None:
        raise ValueError("head_mask is not supported by LSG attention: leave it None")
    return shape


class LSGPreTrainedModel(PreTrainedModel):
    supports_gradient_checkpointing = True
    _no_split_modules = ["EncoderLayer"]


class LSGEncoderModel(LSGPreTrainedModel):
    """Embeddings + LSG encoder (+ optional pooler on the first token); base of LSGBertModel/LSGRobertaModel."""

    roberta_positions = False
    token_types = True
    encoder_module = LSGEncoder
    global_tokens_visible = True  # conversion checks switch the global tokens off to compare with the source
    supports_question_global = True

    def __init__(self, config, add_pooling_layer: bool = True):
        super().__init__(config)
        self.geometry = validate_lsg_fields(config)
        if getattr(config, "question_global", None) and not self.supports_question_global:
            raise ValueError(f"question_global is not supported by {type(self).__name__}: set it to False")
        self.embeddings = LSGEmbeddings(config, self.roberta_positions, self.token_types)
        self.encoder = self.encoder_module(config)
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                question_mask=None, **kwargs):
        """attention_mask: 1 token / 0 padding. last_hidden_state has the input's length; hidden_states
        (when asked) hold every layer's full sequence: the global tokens first (with question_global, the
        question slots right after the learned ones), then the padded tokens.

        question_mask (B, T), with question_global: 1 on the question, a prefix of every row; by default
        every token before the first config.sep_token_id."""
        cfg = self.config
        output_hidden_states = cfg.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = cfg.return_dict if return_dict is None else return_dict
        shape = check_inputs(input_ids, inputs_embeds, head_mask, dict(
            attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            question_mask=question_mask))
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        is_token = torch.ones(shape, dtype=torch.bool, device=device) if attention_mask is None else attention_mask != 0
        pattern = encoder_pattern(cfg, self.geometry, is_token, self.global_tokens_visible)
        question = self._question(input_ids, question_mask)
        if question is not None:
            pattern = with_question_globals(pattern, question)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, G + T, C)
        slots = pattern.geometry.num_global_tokens - cfg.num_global_tokens
        if slots:
            hidden = question_into_slots(hidden, cfg.num_global_tokens, slots)
        hidden = nn.functional.pad(hidden, (0, 0, 0, pattern.length - shape[1]))
        hidden, all_hidden = self.encoder(hidden, pattern, output_hidden_states)
        if slots:
            hidden = question_from_slots(hidden, cfg.num_global_tokens, question)
        sequence = pool_and_crop(hidden, cfg, shape[1])
        pooled = self.pooler(sequence) if self.pooler is not None else None
        if not return_dict:
            return (sequence, pooled) + ((all_hidden,) if all_hidden is not None else ())
        return EncoderOutput(last_hidden_state=sequence, pooler_output=pooled, hidden_states=all_hidden)

    def _question(self, input_ids, question_mask) -> torch.Tensor | None:
        """(B, T) bool of the question tokens when question_global is on, else None."""
        if not getattr(self.config, "question_global", None):
            return None
        if question_mask is not None:
            question = question_mask != 0
            starts = torch.arange(question.shape[1], device=question.device)[None, :] < question.sum(1, keepdim=True)
            if not bool((question == starts).all()):
                raise ValueError("question_mask must mark a prefix of every row (the question comes first in a pair "
                                 "encoding): encode (question, context), not (context, question)")
            return question
        if input_ids is None:
            raise ValueError("question_global from inputs_embeds needs question_mask (1 on the question's tokens)")
        return question_mask_of(input_ids, getattr(self.config, "sep_token_id", None)) != 0


class LSGBertPreTrainedModel(LSGPreTrainedModel):
    config_class = LSGBertConfig
    base_model_prefix = "bert"


class LSGRobertaPreTrainedModel(LSGPreTrainedModel):
    config_class = LSGRobertaConfig
    base_model_prefix = "roberta"


class LSGBertModel(LSGEncoderModel, LSGBertPreTrainedModel):
    """LSG encoder with BERT's embeddings (positions from 0)."""

    config_class = LSGBertConfig
    base_model_prefix = "bert"


class LSGRobertaModel(LSGEncoderModel, LSGRobertaPreTrainedModel):
    """LSG encoder with RoBERTa's embeddings (positions skip padding, from pad_token_id + 1)."""

    config_class = LSGRobertaConfig
    base_model_prefix = "roberta"
    roberta_positions = True
