"""Conversion target: a short BERT / RoBERTa / BART checkpoint -> an LSG model.

Weights are carried name for name (BART's encoder layers through the published-name map); the
position tables are extended by tiling (BART: encoder AND decoder tables); the global
embeddings start as LSG's recipe has them: rows of the short position table spread with a
stride of 64, plus the word embedding of <s>/[CLS] for global 0 and of <mask>/[MASK] for the
others (and token type 0 for BERT-family models), so a global token starts as "a special token
somewhere in the document".

The conversion verifies itself with the global tokens switched off: on inputs of at most two
blocks LSG attention is full attention, so the model must then equal its source.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..attention.lsg_pattern import MAX_GLOBAL_TOKENS, LSGGeometry
from ..models import (
    LSGBartConfig,
    LSGBartForConditionalGeneration,
    LSGBertConfig,
    LSGBertForMaskedLM,
    LSGBertModel,
    LSGRobertaConfig,
    LSGRobertaForMaskedLM,
    LSGRobertaModel,
)
from ..models.lsg_mpnet import MPNET_LAYER, LSGMPNetConfig, LSGMPNetForMaskedLM, LSGMPNetModel
from ..models.weight_names import BART_ENCODER_LAYER, rename_keys, scoped
from .positions import extend_position_table
from .sources import SourceArchitecture
from .targets import ConversionTarget

DEFAULTS = dict(block_size=128, sparse_block_size=128, sparsity_factor=2, sparsity_type="norm", num_global_tokens=1)
GLOBAL_POSITION_STRIDE = 64

# family -> (config class, encoder class, masked-LM class)
FAMILIES = {
    "bert": (LSGBertConfig, LSGBertModel, LSGBertForMaskedLM),
    "electra": (LSGBertConfig, LSGBertModel, LSGBertForMaskedLM),
    "roberta": (LSGRobertaConfig, LSGRobertaModel, LSGRobertaForMaskedLM),
    "mpnet": (LSGMPNetConfig, LSGMPNetModel, LSGMPNetForMaskedLM),
    "bart": (LSGBartConfig, LSGBartForConditionalGeneration, LSGBartForConditionalGeneration),
}


def spread_positions(table: torch.Tensor, stride: int = GLOBAL_POSITION_STRIDE) -> torch.Tensor:
    """(P, C) short position table -> (512, C): row k takes position (k mod 512/stride) * stride + k div (512/stride),
    so consecutive global tokens sit far apart in the document (tables of other sizes are cut or
    padded to 512 rows with their mean first)."""
    rows = table[:MAX_GLOBAL_TOKENS]
    if rows.shape[0] < MAX_GLOBAL_TOKENS:
        filler = rows.mean(dim=0, keepdim=True).expand(MAX_GLOBAL_TOKENS - rows.shape[0], -1)
        rows = torch.cat([rows, filler])
    return rows.reshape(-1, stride, rows.shape[1]).transpose(0, 1).reshape(MAX_GLOBAL_TOKENS, -1)


def global_embeddings(positions: torch.Tensor, words: torch.Tensor, first_id: int, other_id: int,
                      token_type: torch.Tensor | None = None) -> torch.Tensor:
    table = spread_positions(positions).clone()
    table[0] += words[first_id]
    table[1:] += words[other_id]
    if token_type is not None:
        table += token_type
    return table


class LSGTarget(ConversionTarget):
    name = "lsg"
    description = "local + sparse + global attention, longdoc.LSG* models (BERT, RoBERTa, MPNet, BART)"

    def check_settings(self, max_length: int, settings: dict) -> dict:
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"lsg conversion does not take {sorted(unknown)}; its settings are {sorted(DEFAULTS)}")
        merged = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
        LSGGeometry(merged["block_size"], merged["sparse_block_size"], merged["sparsity_factor"],
                    merged["sparsity_type"], merged["num_global_tokens"])  # raises a ValueError that explains
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        return merged

    def check_source(self, arch: SourceArchitecture) -> None:
        if arch.name not in FAMILIES:
            raise ValueError(f"cannot convert a {arch.name} checkpoint to LSG: supported are {', '.join(FAMILIES)}")

    def model_class(self, masked_lm: bool, arch: SourceArchitecture) -> type[PreTrainedModel]:
        _, encoder, with_head = FAMILIES[arch.name]
        return with_head if masked_lm else encoder

    def convert_model(self, source: PreTrainedModel, arch: SourceArchitecture, tokenizer: PreTrainedTokenizerBase,
                      max_length: int, settings: dict) -> tuple[PreTrainedModel, list[str]]:
        if arch.seq2seq:
            return self._convert_bart(source, tokenizer, max_length, settings)
        return self._convert_encoder(source, arch, tokenizer, max_length, settings)

    def _special_ids(self, tokenizer, config) -> tuple[int, int]:
        first = next(i for i in (tokenizer.bos_token_id, tokenizer.cls_token_id, 0) if i is not None)
        other = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else first
        return first, other

    def _convert_encoder(self, source, arch, tokenizer, max_length, settings):
        config_class, encoder_class, mlm_class = FAMILIES[arch.name]
        masked_lm = arch.has_masked_lm_head(source.config)
        offset = arch.position_offset(source.config)
        fields = source.config.to_dict()
        for key in ("architectures", "model_type", "transformers_version", "auto_map", "dtype", "torch_dtype"):
            fields.pop(key, None)
        model_class = mlm_class if masked_lm else encoder_class
        config = config_class(**{**fields, **settings, "max_position_embeddings": max_length + offset,
                                 "architectures": [model_class.__name__],
                                 # where QA models find the question (the tokenizer's separator)
                                 "sep_token_id": fields.get("sep_token_id") if tokenizer.sep_token_id is None
                                 else tokenizer.sep_token_id})
        prefix = model_class.base_model_prefix + "." if masked_lm else ""
        state = {}
        for key, tensor in source.state_dict().items():
            name = arch.longformer_key(key, prefix)  # BERT-layout names are LSG names too
            if name is not None:
                state[name] = tensor
        if arch.name == "mpnet":
            state = rename_keys(state, MPNET_LAYER)
        embeddings = f"{prefix}embeddings."
        short_positions = state[embeddings + "position_embeddings.weight"]
        state[embeddings + "position_embeddings.weight"] = extend_position_table(short_positions, offset, offset,
                                                                                 max_length)
        first, other = self._special_ids(tokenizer, source.config)
        token_type = state.get(embeddings + "token_type_embeddings.weight")
        state[embeddings + "global_embeddings.weight"] = global_embeddings(
            short_positions, state[embeddings + "word_embeddings.weight"], first, other,
            None if token_type is None else token_type[0])
        model = model_class(config).to(source.dtype)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"the {arch.name} key map produced names an LSG model does not have: {unexpected}")
        fresh = [name for name in missing if name.removeprefix(prefix).startswith("pooler.")]
        unfilled = sorted(set(missing) - set(fresh) - {"lm_head.decoder.weight", "lm_head.decoder.bias"})
        if unfilled:
            raise ValueError(f"the {arch.name} source provides no weights for {unfilled}")
        model.tie_weights()
        return model.eval(), fresh

    def _convert_bart(self, source, tokenizer, max_length, settings):
        fields = source.config.to_dict()
        for key in ("architectures", "model_type", "transformers_version", "auto_map", "dtype", "torch_dtype"):
            fields.pop(key, None)
        config = LSGBartConfig(**{**fields, **settings, "max_position_embeddings": max_length,
                                  "architectures": ["LSGBartForConditionalGeneration"]})
        state = rename_keys(source.state_dict(), scoped(BART_ENCODER_LAYER, "encoder.layers"))
        short_positions = state["model.encoder.embed_positions.weight"]
        for part in ("encoder", "decoder"):
            key = f"model.{part}.embed_positions.weight"
            state[key] = extend_position_table(state[key], 2, 2, max_length)
        first, other = self._special_ids(tokenizer, source.config)
        words = state["model.shared.weight"] * (config.d_model ** 0.5 if config.scale_embedding else 1.0)
        state["model.encoder.global_embeddings.weight"] = global_embeddings(short_positions, words, first, other)
        model = LSGBartForConditionalGeneration(config).to(source.dtype)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"the bart key map produced names LSG-BART does not have: {unexpected}")
        tied = {"lm_head.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"}
        unfilled = sorted(set(missing) - tied)
        if unfilled:
            raise ValueError(f"the bart source provides no weights for {unfilled}")
        model.tie_weights()
        return model.eval(), []

    def exact_length(self, config) -> int:
        return 2 * config.block_size  # at most two blocks: full attention

    def prepare_for_verification(self, model: PreTrainedModel) -> PreTrainedModel:
        encoder = model.get_encoder() if model.config.is_encoder_decoder else model.base_model
        encoder.global_tokens_visible = False
        model.config.pool_with_global = False
        model.config.pass_global_tokens_to_decoder = False
        return model
