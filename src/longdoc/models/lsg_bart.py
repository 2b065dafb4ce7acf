"""LSG-BART: LSG attention in the encoder, `transformers`' own BART decoder and generate().

Config fields, weight names and outputs are those of `lsg-converter`'s `LSGBart*` classes
(the layout of `ccdv/lsg-bart-base-16384-arxiv`). The encoder layers are the shared
`EncoderLayer`; BART's published layer names (`self_attn.q_proj`, `fc1`...) map onto it by name
(weight_names.py). With `pass_global_tokens_to_decoder` the decoder cross-attends to the
global tokens' states too.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn
from transformers import BartConfig
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqModelOutput
from transformers.models.bart.modeling_bart import (
    BartClassificationHead,
    BartDecoder,
    BartForConditionalGeneration,
    BartForQuestionAnswering,
    BartForSequenceClassification,
    BartLearnedPositionalEmbedding,
    BartPreTrainedModel,
    BartScaledWordEmbedding,
    shift_tokens_right,
)
from transformers.utils.deprecation import deprecate_kwarg

from ..attention.lsg_pattern import MAX_GLOBAL_TOKENS
from .lsg import LSGEncoder, encoder_pattern, init_lsg_fields, pool_and_crop, validate_lsg_fields
from .weight_names import BART_ENCODER_LAYER, register_weight_names, scoped


class LSGBartConfig(BartConfig):
    """BART config + the LSG fields (see LSGBertConfig) + pass_global_tokens_to_decoder.

    An optional `layer_norm_eps` (BART: 1e-5) sets the encoder's LayerNorms, for encoders warm-started
    from BERT-family checkpoints (1e-12)."""

    model_type = "bart"

    def __init__(self, pass_global_tokens_to_decoder: bool = True, **kwargs):
        kwargs = init_lsg_fields(self, kwargs)
        self.pass_global_tokens_to_decoder = pass_global_tokens_to_decoder
        super().__init__(**kwargs)
        validate_lsg_fields(self)


def encoder_layer_config(config: LSGBartConfig) -> SimpleNamespace:
    """BART's encoder hyper-parameters under the names the shared EncoderLayer reads."""
    return SimpleNamespace(
        hidden_size=config.d_model, num_attention_heads=config.encoder_attention_heads,
        intermediate_size=config.encoder_ffn_dim, hidden_act=config.activation_function,
        hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.attention_dropout,
        activation_dropout=config.activation_dropout, layer_norm_eps=getattr(config, "layer_norm_eps", 1e-5),
        num_hidden_layers=config.encoder_layers,
    )


class LSGBartEncoder(nn.Module):
    """Token + position embeddings, global embeddings prepended, LayerNorm, LSG layers."""

    global_tokens_visible = True  # conversion checks switch the global tokens off to compare with the source

    def __init__(self, config: LSGBartConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        self.geometry = validate_lsg_fields(config)
        self.embed_tokens = embed_tokens
        self.embed_positions = BartLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
        self.global_embeddings = nn.Embedding(MAX_GLOBAL_TOKENS, config.d_model)
        self.layernorm_embedding = nn.LayerNorm(config.d_model, eps=getattr(config, "layer_norm_eps", 1e-5))
        self.layers = LSGEncoder(encoder_layer_config(config)).layer
        self.gradient_checkpointing = False

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        cfg = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if head_mask is not None:
            raise ValueError("head_mask is not supported by LSG attention: leave it None")
        output_hidden_states = cfg.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = cfg.return_dict if return_dict is None else return_dict
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        b, t = inputs_embeds.shape[:2]
        if t > cfg.max_position_embeddings:
            raise ValueError(
                f"input of {t} tokens is longer than this model's {cfg.max_position_embeddings} positions: truncate "
                f"it, or convert to a longer model: `longdoc convert --to lsg SRC OUT --max-length {t}`"
            )
        is_token = (torch.ones(b, t, dtype=torch.bool, device=inputs_embeds.device) if attention_mask is None
                    else attention_mask != 0)
        pattern = encoder_pattern(cfg, self.geometry, is_token, self.global_tokens_visible)
        # adaptive padding, as lsg-converter: ids padded with pad_token_id (embeddings with zeros) before the positions;
        # past the position table (where lsg-converter fails) the padded states are zeros
        if t < pattern.length <= cfg.max_position_embeddings:
            pad = (self.embed_tokens(input_ids.new_full((b, pattern.length - t), cfg.pad_token_id))
                   if input_ids is not None else inputs_embeds.new_zeros(b, pattern.length - t, inputs_embeds.shape[2]))
            inputs_embeds = torch.cat([inputs_embeds, pad], dim=1)
        hidden = inputs_embeds + self.embed_positions(inputs_embeds[:, :, -1]).to(inputs_embeds.dtype)
        glob = self.global_embeddings.weight[: cfg.num_global_tokens]
        hidden = torch.cat([glob[None].expand(b, -1, -1).to(hidden.dtype), hidden], dim=1)  # (B, G + T, C)
        hidden = nn.functional.dropout(self.layernorm_embedding(hidden), p=cfg.dropout, training=self.training)
        hidden = nn.functional.pad(hidden, (0, 0, 0, cfg.num_global_tokens + pattern.length - hidden.shape[1]))
        states = (hidden,) if output_hidden_states else None
        for layer in self.layers:
            if self.training and cfg.encoder_layerdrop > 0 and torch.rand([]) < cfg.encoder_layerdrop:
                continue
            hidden = layer(hidden, pattern=pattern)[0]
            if output_hidden_states:
                states += (hidden,)
        context = pool_and_crop(hidden, cfg, t, keep_globals=cfg.pass_global_tokens_to_decoder)
        if not return_dict:
            return tuple(x for x in (context, states) if x is not None)
        return BaseModelOutput(last_hidden_state=context, hidden_states=states)


class LSGBartPreTrainedModel(BartPreTrainedModel):
    config_class = LSGBartConfig
    _no_split_modules = ["EncoderLayer", "BartDecoderLayer"]


class LSGBartModel(LSGBartPreTrainedModel):
    _tied_weights_keys = {"decoder.embed_tokens.weight": "shared.weight", "encoder.embed_tokens.weight": "shared.weight"}

    def __init__(self, config: LSGBartConfig):
        super().__init__(config)
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, embed_scale=scale)
        self.encoder = LSGBartEncoder(config, self.shared)
        self.decoder = BartDecoder(config)
        self.decoder.embed_tokens = self.shared
        self.post_init()

    def get_input_embeddings(self):
        return self.shared

    def set_input_embeddings(self, value):
        self.shared = value
        self.encoder.embed_tokens = value
        self.decoder.embed_tokens = value

    def cross_attention_mask(self, attention_mask, encoder_states: torch.Tensor):
        """Which encoder states the decoder attends to: the tokens' (the first one hidden under `mask_first_token`,
        as lsg-converter's decoder has it) and, when they are passed to it, the global tokens'."""
        cfg = self.config
        if cfg.mask_first_token:
            if attention_mask is None:  # no mask means all tokens, so it must hide the first one too
                length = encoder_states.shape[1] - (cfg.num_global_tokens if cfg.pass_global_tokens_to_decoder else 0)
                attention_mask = torch.ones(encoder_states.shape[0], length, dtype=torch.long,
                                            device=encoder_states.device)
            attention_mask = attention_mask.clone()
            attention_mask[:, 0] = 0
        if attention_mask is None or not cfg.pass_global_tokens_to_decoder:
            return attention_mask
        return nn.functional.pad(attention_mask, (cfg.num_global_tokens, 0), value=1)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                cache=None, inputs_embeds=None, decoder_inputs_embeds=None, use_cache=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        """BART's forward. `cache` (transformers >= 5's name for `past_key_values`) must reach the decoder:
        generate() feeds it one new token per step and relies on the cache for the earlier ones."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError("give decoder_input_ids (or input_ids to shift into them)")
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id,
                                                   self.config.decoder_start_token_id)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask,
                                           inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
                                           return_dict=True)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0],
                                              hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None)
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=self.cross_attention_mask(attention_mask, encoder_outputs.last_hidden_state),
            cache=cache,
            inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )
        return output if return_dict else output.to_tuple()


class LSGBartForConditionalGeneration(LSGBartPreTrainedModel, BartForConditionalGeneration):
    """LSG encoder + BART decoder + LM head; `generate()` (greedy, beam...) is `transformers`'."""

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: LSGBartConfig):
        LSGBartPreTrainedModel.__init__(self, config)
        self.model = LSGBartModel(config)
        self.final_logits_bias = nn.Buffer(torch.zeros((1, self.model.shared.num_embeddings)))
        self.lm_head = nn.Linear(config.d_model, self.model.shared.num_embeddings, bias=False)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, cache=None, inputs_embeds=None, decoder_inputs_embeds=None,
                labels=None, use_cache=None, token_type_ids=None, **kwargs):
        """BART's forward; `token_type_ids`, which BERT-family tokenizers of warm-started models return,
        are accepted when all zero (BART has no token types)."""
        if token_type_ids is not None and bool(token_type_ids.any()):
            raise ValueError("this model has no token types: encode single texts, not pairs (token_type_ids != 0)")
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                               decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
                               cache=cache, inputs_embeds=inputs_embeds,
                               decoder_inputs_embeds=decoder_inputs_embeds, labels=labels, use_cache=use_cache,
                               **kwargs)


class LSGBartForSequenceClassification(LSGBartPreTrainedModel, BartForSequenceClassification):
    """BART's head on the decoder state of the last end-of-sequence token."""

    def __init__(self, config: LSGBartConfig, **kwargs):
        LSGBartPreTrainedModel.__init__(self, config, **kwargs)
        self.model = LSGBartModel(config)
        self.classification_head = BartClassificationHead(config.d_model, config.d_model, config.num_labels,
                                                          config.classifier_dropout)
        self.post_init()


class LSGBartForQuestionAnswering(LSGBartPreTrainedModel, BartForQuestionAnswering):
    def __init__(self, config: LSGBartConfig):
        LSGBartPreTrainedModel.__init__(self, config)
        config.num_labels = 2
        self.num_labels = 2
        self.model = LSGBartModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


register_weight_names(
    ["LSGBartModel", "LSGBartForConditionalGeneration", "LSGBartForSequenceClassification",
     "LSGBartForQuestionAnswering"],
    scoped(BART_ENCODER_LAYER, "encoder.layers"),
)
