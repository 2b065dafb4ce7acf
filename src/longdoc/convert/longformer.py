"""Conversion target: a short BERT-layout checkpoint -> `longdoc.LongformerModel` / `LongformerForMaskedLM`.

Weights: the encoder and MLM head are renamed by the source's key map, the position table is
extended, and each layer's global projections start as copies of its local Q/K/V (so a global
token initially attends like every other token). Everything else is carried unchanged,
token-type embeddings included.
"""

from __future__ import annotations

import re

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..attention.masks import SlidingWindow
from ..models import LongformerConfig, LongformerForMaskedLM, LongformerModel
from .positions import extend_position_table
from .sources import SourceArchitecture
from .targets import ConversionTarget

# Source config fields a Longformer reads with the same meaning.
CARRIED_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "tie_word_embeddings",
)

# Global projections and the local projection each one starts from.
GLOBAL_PROJECTION = re.compile(r"(?P<layer>.*\.attention\.self\.)(?P<proj>query|key|value)\.(?P<param>weight|bias)")

# Weights a Longformer has that a source may lack; they keep their fresh initialisation.
FRESH_IF_MISSING = ("pooler.",)  # ELECTRA has no pooler


class LongformerTarget(ConversionTarget):
    name = "longformer"
    description = "sliding-window + global attention, longdoc.LongformerModel"

    def check_settings(self, max_length: int, settings: dict) -> dict:
        unknown = set(settings) - {"window"}
        if unknown:
            raise ValueError(f"longformer conversion takes only a window setting, not {sorted(unknown)}")
        window = settings.get("window", 512)
        SlidingWindow(window)  # raises a ValueError naming the bad window
        if max_length < window:
            raise ValueError(
                f"max_length={max_length} is smaller than the attention window {window}: a window longer than "
                f"the inputs brings nothing; use max_length >= {window} or a smaller --window"
            )
        return {"window": window}

    def check_source(self, arch: SourceArchitecture) -> None:
        if arch.seq2seq:
            raise ValueError(f"a {arch.name} checkpoint is an encoder-decoder: convert it with --to lsg (LSG-BART)")
        if arch.name == "mpnet":
            raise ValueError("an mpnet checkpoint adds a relative position bias that a Longformer has not: convert it "
                             "with --to lsg")

    def model_class(self, masked_lm: bool, arch: SourceArchitecture = None) -> type[PreTrainedModel]:
        return LongformerForMaskedLM if masked_lm else LongformerModel

    def config(
        self, source_config, tokenizer: PreTrainedTokenizerBase, max_length: int, window: int, masked_lm: bool
    ) -> LongformerConfig:
        pad = source_config.pad_token_id
        sep = _first_id(tokenizer.sep_token_id, getattr(source_config, "sep_token_id", None))
        if sep is None:
            raise ValueError("the source has no separator token (tokenizer.sep_token_id): Longformer needs one")
        # BERT-style vocabularies have no <s>/</s>: [CLS] opens a sequence and [SEP] closes it.
        bos = _first_id(getattr(source_config, "bos_token_id", None), tokenizer.bos_token_id, tokenizer.cls_token_id)
        eos = _first_id(getattr(source_config, "eos_token_id", None), tokenizer.eos_token_id, sep)
        carried = {f: getattr(source_config, f) for f in CARRIED_CONFIG_FIELDS if hasattr(source_config, f)}
        return LongformerConfig(
            **carried,
            attention_window=window,
            max_position_embeddings=max_length + pad + 1,  # positions start at pad + 1
            pad_token_id=pad,
            sep_token_id=sep,
            bos_token_id=bos,
            eos_token_id=eos,
            architectures=[self.model_class(masked_lm).__name__],
        )

    def convert_model(
        self,
        source: PreTrainedModel,
        arch: SourceArchitecture,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        settings: dict,
    ) -> tuple[PreTrainedModel, list[str]]:
        window = settings["window"]
        masked_lm = arch.has_masked_lm_head(source.config)
        config = self.config(source.config, tokenizer, max_length, window, masked_lm)
        model_class = self.model_class(masked_lm)
        encoder_prefix = model_class.base_model_prefix + "." if masked_lm else ""

        state = {}
        for key, tensor in source.state_dict().items():
            name = arch.longformer_key(key, encoder_prefix)
            if name is not None:
                state[name] = tensor
        for name in list(state):
            match = GLOBAL_PROJECTION.fullmatch(name)
            if match:
                state[f"{match['layer']}{match['proj']}_global.{match['param']}"] = state[name].clone()
        positions = f"{encoder_prefix}embeddings.position_embeddings.weight"
        state[positions] = extend_position_table(
            state[positions],
            source_offset=arch.position_offset(source.config),
            target_offset=config.pad_token_id + 1,
            max_tokens=max_length,
        )

        model = model_class(config).to(source.dtype)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"the {arch.name} key map produced names a Longformer does not have: {unexpected}")
        fresh = [name for name in missing if name.removeprefix(encoder_prefix).startswith(FRESH_IF_MISSING)]
        unfilled = sorted(set(missing) - set(fresh))
        if unfilled:
            raise ValueError(f"the {arch.name} source provides no weights for {unfilled}")
        return model.eval(), fresh

    def exact_length(self, config) -> int:
        windows = config.attention_window
        smallest = min(windows) if isinstance(windows, (list, tuple)) else windows
        return smallest // 2 + 1  # every token within window // 2 of every other


def _first_id(*candidates):
    return next((c for c in candidates if c is not None), None)
