"""Longformer: sliding-window + global attention (config, embeddings, encoder, base model).

Weight names and config.json are those of `transformers`' Longformer, so checkpoints load
both ways. Task models are in `longformer_heads.py`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel

from ..attention.masks import LongformerPattern, SlidingWindow
from ..attention.sliding_window import (
    global_attention,
    global_attention_factored,
    local_attention,
    merge_global_rows,
)
from .layers import EncoderLayer, Pooler, autocast_input, roberta_position_ids
from .outputs import EncoderOutput


class LongformerConfig(PreTrainedConfig):
    """Configuration of a Longformer. `attention_window` is the FULL window (both sides), an
    int or one value per layer; a query sees attention_window // 2 tokens on each side."""

    model_type = "longformer"

    def __init__(
        self,
        attention_window: int | list[int] = 512,
        sep_token_id: int = 2,
        pad_token_id: int = 1,
        bos_token_id: int = 0,
        eos_token_id: int = 2,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        kwargs.pop("onnx_export", None)  # a `transformers` export switch; our kernel needs none
        self.attention_window = attention_window
        self.sep_token_id = sep_token_id
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        self.validate_longformer()

    def validate_longformer(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        self.layer_windows()  # raises on a bad window

    def layer_windows(self) -> list[SlidingWindow]:
        """One validated SlidingWindow per layer."""
        windows = self.attention_window
        if isinstance(windows, (list, tuple)):
            if len(windows) != self.num_hidden_layers:
                raise ValueError(
                    f"attention_window has {len(windows)} values but the model has {self.num_hidden_layers} "
                    f"layers: give one window per layer, or a single int for all layers"
                )
            return [SlidingWindow(w) for w in windows]
        return [SlidingWindow(windows)] * self.num_hidden_layers

    @property
    def max_tokens(self) -> int:
        """Longest input the position table covers (positions start at pad_token_id + 1)."""
        return self.max_position_embeddings - (self.pad_token_id or 0) - 1


class LongformerEmbeddings(nn.Module):
    """Word + position + token-type embeddings; RoBERTa-style positions that skip padding."""

    def __init__(self, config: LongformerConfig):
        super().__init__()
        self.config = config
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def position_ids(self, input_ids: torch.Tensor | None, shape, device) -> torch.Tensor:
        return roberta_position_ids(input_ids, shape, self.padding_idx, device)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if position_ids is None:
            position_ids = self.position_ids(input_ids, shape, device)
        self._check_range(position_ids, self.config.max_position_embeddings, "position id", shape[1])
        if token_type_ids is None:
            token_type_ids = torch.zeros(shape, dtype=torch.long, device=device)
        self._check_range(token_type_ids, self.config.type_vocab_size, "token type id", None)
        if inputs_embeds is None:
            self._check_range(input_ids, self.config.vocab_size, "token id", None)
            inputs_embeds = self.word_embeddings(input_ids)
        x = inputs_embeds + self.position_embeddings(position_ids) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))  # (B, T, C)

    def _check_range(self, ids: torch.Tensor, size: int, what: str, length: int | None):
        if ids.numel() == 0:
            return
        low, high = int(ids.min()), int(ids.max())
        if low >= 0 and high < size:
            return
        if what == "position id" and high >= size:
            raise ValueError(
                f"input of {length} tokens needs position {high}, but this model has {size} positions "
                f"(at most {self.config.max_tokens} tokens). Truncate the input, or convert to a longer model: "
                f"`longdoc convert --to longformer SRC OUT --max-length {length}`"
            )
        bad = low if low < 0 else high
        raise ValueError(f"{what} {bad} is outside [0, {size}): check that the tokenizer matches this model")


class LongformerSelfAttention(nn.Module):
    """Local projections for the window, `*_global` projections for the rows of global tokens."""

    def __init__(self, config: LongformerConfig, layer_id: int):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.window = config.layer_windows()[layer_id]
        self.dropout = config.attention_probs_dropout_prob
        size = config.hidden_size
        self.query, self.key, self.value = (nn.Linear(size, size) for _ in range(3))
        self.query_global, self.key_global, self.value_global = (nn.Linear(size, size) for _ in range(3))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:2], self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, hidden_states: torch.Tensor, pattern: LongformerPattern, output_attentions: bool = False):
        """hidden_states (B, T, C) -> (context (B, T, C), local_probs, global_probs)."""
        pattern = pattern.with_window(self.window)
        dropout = self.dropout if self.training else 0.0
        hidden_states = autocast_input(hidden_states)  # one cast for the 3 (or 6) projections
        q, k, v = (self._heads(p(hidden_states)) for p in (self.query, self.key, self.value))
        out, local_probs = local_attention(q, k, v, pattern, dropout, output_attentions)
        global_probs = None
        if pattern.globals.count:
            out, local_probs, global_probs = self._global_rows(hidden_states, pattern, out, local_probs, dropout,
                                                               output_attentions)
        context = out.transpose(1, 2).reshape(hidden_states.shape)  # (B, T, C)
        return context, local_probs, global_probs

    def _global_rows(self, hidden_states, pattern, out, local_probs, dropout, output_attentions):
        """Rows of the global tokens, with the `*_global` projections, written over `out`."""
        idx = pattern.globals.indices[:, :, None].expand(-1, -1, hidden_states.shape[-1])
        q_glob = self._heads(self.query_global(hidden_states.gather(1, idx)))  # (B, H, g, D)
        if self.num_heads * pattern.globals.count < hidden_states.shape[-1]:  # few globals: skip the projections
            g_out, g_probs = global_attention_factored(
                q_glob, hidden_states, self.key_global.weight, self.key_global.bias, self.value_global.weight,
                self.value_global.bias, pattern, dropout, self.training,
            )
        else:
            k_glob, v_glob = self._heads(self.key_global(hidden_states)), self._heads(self.value_global(hidden_states))
            g_out, g_probs = global_attention(q_glob, k_glob, v_glob, pattern, dropout, self.training)
        return merge_global_rows(out, local_probs, g_out, g_probs if output_attentions else None, pattern)


LongformerPooler = Pooler


class LongformerEncoder(nn.Module):
    def __init__(self, config: LongformerConfig):
        super().__init__()
        self.layer = nn.ModuleList(
            [EncoderLayer(config, LongformerSelfAttention(config, i)) for i in range(config.num_hidden_layers)]
        )

    def forward(self, hidden_states, pattern: LongformerPattern, output_attentions=False, output_hidden_states=False):
        all_hidden = (hidden_states,) if output_hidden_states else None
        local_attn = () if output_attentions else None
        global_attn = () if output_attentions and pattern.globals.count else None
        for layer in self.layer:
            hidden_states, local_probs, global_probs = layer(
                hidden_states, pattern=pattern, output_attentions=output_attentions
            )
            if output_hidden_states:
                all_hidden += (hidden_states,)
            if output_attentions:
                local_attn += (local_probs,)  # (B, H, T, g + 2w + 1)
                if global_attn is not None:
                    global_attn += (global_probs.transpose(2, 3),)  # (B, H, T, g)
        return hidden_states, all_hidden, local_attn, global_attn


class LongformerPreTrainedModel(PreTrainedModel):
    config_class = LongformerConfig
    base_model_prefix = "longformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["EncoderLayer"]


def _check_mask(name: str, mask: torch.Tensor | None, shape) -> None:
    if mask is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)} but the input has shape {tuple(shape)} (batch, tokens): "
            f"give one value per token"
        )


class LongformerModel(LongformerPreTrainedModel):
    """Embeddings + Longformer encoder (+ optional pooler on the first token)."""

    def __init__(self, config: LongformerConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = LongformerEmbeddings(config)
        self.encoder = LongformerEncoder(config)
        self.pooler = LongformerPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        global_attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """attention_mask: 1 token / 0 padding; global_attention_mask: 1 global / 0 local."""
        cfg = self.config
        output_attentions = cfg.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = cfg.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = cfg.return_dict if return_dict is None else return_dict
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if input_ids is not None and input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, tokens), got shape {tuple(input_ids.shape)}")
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        for name, mask in (("attention_mask", attention_mask), ("global_attention_mask", global_attention_mask),
                           ("token_type_ids", token_type_ids), ("position_ids", position_ids)):
            _check_mask(name, mask, shape)
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        is_token = torch.ones(shape, dtype=torch.bool, device=device) if attention_mask is None else attention_mask != 0
        is_global = None if global_attention_mask is None else global_attention_mask != 0
        pattern = LongformerPattern.build(cfg.layer_windows()[0], is_token, is_global)

        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        hidden, all_hidden, local_attn, global_attn = self.encoder(
            hidden, pattern, output_attentions, output_hidden_states
        )
        pooled = self.pooler(hidden) if self.pooler is not None else None
        if not return_dict:
            return (hidden, pooled) + tuple(x for x in (all_hidden, local_attn, global_attn) if x is not None)
        return EncoderOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            hidden_states=all_hidden,
            attentions=local_attn,
            global_attentions=global_attn,
        )
