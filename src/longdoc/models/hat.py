"""HAT: hierarchical attention over segments (Chalkidis et al. 2022), on the shared encoder layer.

A document is N segments of L = `max_sentence_size` tokens, flat as (B, N * L). Token positions
restart in every segment. Layer i follows the layout: S runs the segment-wise encoder on
(B * N, L, C); D runs the cross-segment encoder on the segments' first tokens (B, N, C), plus a
segment-position embedding shared by all D layers, and writes its outputs back into those slots.

Weight names are the published ones (`hi_transformer.encoder.layer.{i}.sentence_encoder...`).
The segment-position table is one parameter, stored under the first D layer; the published
checkpoints repeat it (tied) under every D layer, so the repeats are read as duplicates on load and
written back on save, where the authors' code expects them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder
from transformers.utils import ModelOutput

from ..attention.lsg_bias import fallback_offsets
from ..attention.hierarchical import dense_attention, segment_heads, segments_to_tokens, tokens_to_segments
from .hat_config import HATConfig
from .layers import EncoderLayer, HeadProjections, input_shape

SEGMENT_TABLE = re.compile(r"^(.*encoder\.layer\.)(\d+)(\.position_embeddings\.weight)$")


@dataclass
class BaseModelOutputWithSentenceAttentions(ModelOutput):
    """`attentions`: the segment-wise encoders' (B * N, H, L, L), one per layer (None for D-only
    layers); `sentence_attentions`: the cross-segment encoders' (B, H, N, N) (None for S-only layers)."""

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor | None, ...] | None = None
    sentence_attentions: tuple[torch.Tensor | None, ...] | None = None


class HATEmbeddings(nn.Module):
    """Word + token-type + position embeddings, positions restarting in every segment:
    pad+1 .. pad+L, and 0 for padding tokens (the reference's `position_ids * (ids != pad)`)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=self.padding_idx)
        self.position_embeddings = nn.Embedding(config.max_sentence_size + self.padding_idx + 1, config.hidden_size,
                                                padding_idx=self.padding_idx)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def position_ids(self, is_real: torch.Tensor) -> torch.Tensor:
        """(B, T) bool -> (B, T) positions."""
        segment_size = self.config.max_sentence_size
        in_segment = torch.arange(is_real.shape[1], device=is_real.device) % segment_size + self.padding_idx + 1
        return in_segment[None, :] * is_real.long()

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, is_token=None):
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        if position_ids is None:
            # with ids, padding is where the pad id is (as the reference); with embeddings, the attention mask
            position_ids = self.position_ids(input_ids.ne(self.padding_idx) if input_ids is not None else is_token)
        elif int(position_ids.max()) >= self.position_embeddings.num_embeddings or int(position_ids.min()) < 0:
            raise ValueError(f"position_ids must lie in [0, {self.position_embeddings.num_embeddings}): positions "
                             f"restart in every segment of {self.config.max_sentence_size} tokens")
        if inputs_embeds is None:
            if input_ids.numel() and (int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0):
                raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}): check that the tokenizer "
                                 f"matches this model")
            inputs_embeds = self.word_embeddings(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros(shape, dtype=torch.long, device=inputs_embeds.device)
        x = inputs_embeds + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))  # (B, T, C)


class HATSelfAttention(HeadProjections):
    """Dense attention within one row (a segment, or a document's segments)."""

    def forward(self, hidden_states: torch.Tensor, is_key: torch.Tensor, output_attentions: bool = False,
                position_bias: torch.Tensor | None = None):
        q, k, v = self.project(hidden_states)
        out, probs = dense_attention(q, k, v, is_key, self.dropout if self.training else 0.0, output_attentions,
                                     position_bias)
        return out.transpose(1, 2).reshape(hidden_states.shape), probs  # (B, T, C), (B, H, T, T) | None


class HATLayer(nn.Module):
    def __init__(self, config, segment_wise: bool, cross_segment: bool, owns_segment_positions: bool):
        super().__init__()
        self.segment_size = config.max_sentence_size
        if segment_wise:
            self.sentence_encoder = EncoderLayer(config, HATSelfAttention(config))
        if cross_segment:
            self.document_encoder = EncoderLayer(config, HATSelfAttention(config))
        if owns_segment_positions:
            # positions 1..N, 0 for empty segments: 0 is the padding row
            self.position_embeddings = nn.Embedding(config.max_sentences + 1, config.hidden_size, padding_idx=0)

    def forward(self, hidden, token_keys, segment_keys, segment_positions, output_attentions=False,
                token_bias=None):
        """hidden (B, N * L, C); token_keys (B * N, L) and segment_keys (B, N) bool (None: no padding); segment_positions
        (B, N, C) or None; token_bias (1, H, L, L) or None. Returns the new hidden states and the two
        encoders' attention probabilities."""
        batch = hidden.shape[0]
        x, segment_probs, document_probs = hidden, None, None
        if hasattr(self, "sentence_encoder"):
            out, segment_probs = self.sentence_encoder(tokens_to_segments(hidden, self.segment_size),
                                                       is_key=token_keys, output_attentions=output_attentions,
                                                       position_bias=token_bias)
            x = segments_to_tokens(out, batch)  # (B, N * L, C)
        if hasattr(self, "document_encoder"):
            heads = segment_heads(x, self.segment_size)  # (B, N, C) view
            # a new tensor: the write-back below must not change what the document encoder read
            inputs = heads + segment_positions if segment_positions is not None else heads.clone()
            out, document_probs = self.document_encoder(inputs, is_key=segment_keys,
                                                        output_attentions=output_attentions)
            if x is hidden:
                x = hidden.clone()  # never write into the caller's tensor (an earlier layer's hidden states)
            x[:, :: self.segment_size] = out
        return x, segment_probs, document_probs


class HATEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        layers = config.layers
        self.cross_layers = [i for i, (_, cross) in enumerate(layers) if cross]
        self.layer = nn.ModuleList(
            HATLayer(config, segment_wise, cross, owns_segment_positions=bool(self.cross_layers) and i == self.cross_layers[0])
            for i, (segment_wise, cross) in enumerate(layers)
        )

        if config.relative_attention_num_buckets:
            self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets,
                                                        config.num_attention_heads)

    def token_bias(self, dtype) -> torch.Tensor | None:
        """MPNet's relative bias within a segment, (1, H, L, L), or None."""
        if not hasattr(self, "relative_attention_bias"):
            return None
        table = self.relative_attention_bias
        offsets = fallback_offsets(self.config.max_sentence_size).to(table.weight.device)  # key - query
        buckets = MPNetEncoder.relative_position_bucket(offsets, num_buckets=table.num_embeddings)
        return table(buckets).permute(2, 0, 1)[None].to(dtype)

    @property
    def segment_position_table(self) -> nn.Embedding | None:
        return self.layer[self.cross_layers[0]].position_embeddings if self.cross_layers else None

    def forward(self, hidden, is_token, output_attentions=False, output_hidden_states=False):
        """hidden (B, N * L, C), is_token (B, N * L) bool."""
        batch, length = is_token.shape
        size = self.config.max_sentence_size
        token_keys = is_token.reshape(batch * (length // size), size)  # (B * N, L)
        segment_keys = is_token[:, ::size]  # (B, N): a segment is empty when its first token is padding
        padded = not bool(is_token.all())
        positions = None
        if self.cross_layers and not self.config.legacy_segment_positions:
            numbers = torch.arange(1, segment_keys.shape[1] + 1, device=is_token.device)
            positions = self.segment_position_table(numbers[None, :] * segment_keys.long()).to(hidden.dtype)
        token_bias = self.token_bias(hidden.dtype)
        all_hidden = (hidden,) if output_hidden_states else None
        segment_attn = () if output_attentions else None
        document_attn = () if output_attentions else None
        for layer in self.layer:
            hidden, segment_probs, document_probs = layer(
                hidden, token_keys if padded else None, segment_keys if padded else None, positions,
                output_attentions, token_bias)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                segment_attn += (segment_probs,)
                document_attn += (document_probs,)
        return BaseModelOutputWithSentenceAttentions(last_hidden_state=hidden, hidden_states=all_hidden,
                                                     attentions=segment_attn, sentence_attentions=document_attn)


class HATPreTrainedModel(PreTrainedModel):
    config_class = HATConfig
    base_model_prefix = "hi_transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["HATLayer"]
    # the reference saves its position-id buffer; the segment-position repeats are equal to the one we keep
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.position_ids", r"encoder\.layer\.\d+\.position_embeddings\."]

    def _published_state_dict(self) -> dict:
        """Our state dict in the layout the authors' code loads: the segment-position table repeated
        under every cross-segment layer, tied weights written out (as their `.bin` files have them) and
        their persistent `embeddings.position_ids` buffer (without it their loader leaves it unset)."""
        state = self.state_dict()
        config = self.config
        cross = [i for i, (_, d) in enumerate(config.layers) if d]
        for key in list(state):
            match = SEGMENT_TABLE.match(key)
            if match and int(match.group(2)) == cross[0]:
                for i in cross[1:]:
                    state[f"{match.group(1)}{i}{match.group(3)}"] = state[key].clone()
            if key.endswith("embeddings.word_embeddings.weight"):
                pad, size = config.pad_token_id, config.max_sentence_size
                positions = torch.arange(pad + 1, size + pad + 1).repeat(config.max_sentences)[None]  # (1, N * L)
                state[key.replace("word_embeddings.weight", "position_ids")] = positions
        for alias in getattr(self, "all_tied_weights_keys", {}) or {}:
            if alias in state:
                state[alias] = state[alias].clone()
        return state

    def save_pretrained(self, save_directory, *args, **kwargs):
        if kwargs.get("state_dict") is None:
            kwargs["state_dict"] = self._published_state_dict()
        return super().save_pretrained(save_directory, *args, **kwargs)


def check_hat_inputs(config, input_ids, inputs_embeds, masks: dict) -> tuple[int, int]:
    """(batch, tokens) after checking that the input is whole segments and not too many of them."""
    shape = input_shape(input_ids, inputs_embeds, masks, "batch, segments * max_sentence_size")
    size, limit = config.max_sentence_size, config.max_sentences
    if shape[1] % size:
        raise ValueError(
            f"input of {shape[1]} tokens is not a whole number of segments of max_sentence_size={size}: pad every "
            f"document to N * {size} tokens, each segment [CLS] + up to {size - 1} tokens + padding "
            f"(longdoc.data.hat_segments does this)"
        )
    if shape[1] // size > limit:
        raise ValueError(
            f"input of {shape[1] // size} segments is more than this model's max_sentences={limit}: truncate the "
            f"document to {limit} segments (segment_documents(..., truncate=True), `--truncate`), or convert a model "
            f"with more segments (`longdoc convert --to hat SRC OUT --max-sentences {shape[1] // size}`)"
        )
    return shape


class HATModel(HATPreTrainedModel):
    """Embeddings + hierarchical encoder; the same forward arguments and outputs as the reference."""

    def __init__(self, config, add_pooling_layer: bool = False):
        super().__init__(config)
        self.embeddings = HATEmbeddings(config)
        self.encoder = HATEncoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                head_mask=None):
        """attention_mask: 1 token / 0 padding, (B, N * L). An empty segment is all padding."""
        cfg = self.config
        if head_mask is not None:
            raise ValueError("head_mask is not supported by HAT: leave it None")
        output_attentions = cfg.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = cfg.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = cfg.return_dict if return_dict is None else return_dict
        shape = check_hat_inputs(cfg, input_ids, inputs_embeds, dict(
            attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids))
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        is_token = torch.ones(shape, dtype=torch.bool, device=device) if attention_mask is None else attention_mask != 0
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, is_token)
        out = self.encoder(hidden, is_token, output_attentions, output_hidden_states)
        if not return_dict:
            return out.to_tuple()
        return out
