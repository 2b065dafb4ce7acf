"""Warm-start an LSG encoder-decoder (BART layout) from a short BERT-family encoder.

No pretrained seq2seq weights may be at hand, but a BERT-family encoder is a BART encoder with
another name for each weight: post-LayerNorm layers, learned absolute positions, a LayerNorm
over the embeddings (BERT's token type 0 is folded into the positions). So the encoder is
carried over exactly (and checked), and the decoder starts from the same layers
("BERT2BERT", Rothe et al. 2020): its self-attention and feed-forward blocks are copies of
the encoder's, its cross-attention starts as a copy of the self-attention, and the LM head is
tied to the word embeddings. Special tokens: [CLS] starts (and is the decoder start token),
[SEP] ends, [PAD] pads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ..attention.lsg_pattern import LSGGeometry
from ..models import LSGBartConfig, LSGBartForConditionalGeneration
from .lsg import DEFAULTS, global_embeddings
from .positions import extend_position_table
from .sources import source_architecture

ATTENTION = {"query": "q_proj", "key": "k_proj", "value": "v_proj"}


@dataclass
class WarmStartReport:
    source: str
    output: str
    max_length: int
    encoder_layers: int
    decoder_layers: int
    encoder_max_abs_diff: float
    seconds: float

    def __str__(self) -> str:
        return (f"warm-started LSGBartForConditionalGeneration at {self.output} from {self.source}: "
                f"{self.encoder_layers} encoder + {self.decoder_layers} decoder layers, {self.max_length} tokens; "
                f"encoder vs source (global tokens off, short inputs): max |diff| {self.encoder_max_abs_diff:.2e} "
                f"in {self.seconds:.1f} s")


def _layer_weights(state: dict, index: int) -> dict:
    """One BERT layer's weights under BART decoder-layer names (cross-attention copied from self-attention)."""
    src = f"encoder.layer.{index}."
    out = {}
    for bert, bart in ATTENTION.items():
        for param in ("weight", "bias"):
            tensor = state[f"{src}attention.self.{bert}.{param}"]
            out[f"self_attn.{bart}.{param}"] = tensor
            out[f"encoder_attn.{bart}.{param}"] = tensor.clone()
    for param in ("weight", "bias"):
        out[f"self_attn.out_proj.{param}"] = state[f"{src}attention.output.dense.{param}"]
        out[f"encoder_attn.out_proj.{param}"] = state[f"{src}attention.output.dense.{param}"].clone()
        out[f"self_attn_layer_norm.{param}"] = state[f"{src}attention.output.LayerNorm.{param}"]
        out[f"encoder_attn_layer_norm.{param}"] = state[f"{src}attention.output.LayerNorm.{param}"].clone()
        out[f"fc1.{param}"] = state[f"{src}intermediate.dense.{param}"]
        out[f"fc2.{param}"] = state[f"{src}output.dense.{param}"]
        out[f"final_layer_norm.{param}"] = state[f"{src}output.LayerNorm.{param}"]
    return out


def warm_start_summarizer(src: str | os.PathLike, out: str | os.PathLike, max_length: int = 4096,
                          decoder_layers: int | None = None, **settings) -> WarmStartReport:
    """Build and save (with its tokenizer) an LSG-BART summarizer warm-started from encoder `src`.

    `decoder_layers` (default: as many as the encoder) copies the encoder's first layers.
    `settings`: the LSG settings of `convert(..., to="lsg")`."""
    start = time.perf_counter()
    src, out = str(src), str(out)
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown LSG settings {sorted(unknown)}; the settings are {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    LSGGeometry(settings["block_size"], settings["sparse_block_size"], settings["sparsity_factor"],
                settings["sparsity_type"], settings["num_global_tokens"])
    source_config = AutoConfig.from_pretrained(src)
    arch = source_architecture(source_config)
    if arch.seq2seq or arch.name == "electra":
        raise ValueError(f"warm-starting takes a BERT or RoBERTa encoder; a {arch.name} checkpoint converts with "
                         f"`longdoc convert --to lsg` directly")
    tokenizer = AutoTokenizer.from_pretrained(src)
    ids = _special_ids(tokenizer)
    encoder = AutoModel.from_pretrained(src, dtype=torch.float32).eval()
    layers = source_config.num_hidden_layers
    decoder_layers = layers if decoder_layers is None else decoder_layers
    if not 1 <= decoder_layers <= layers:
        raise ValueError(f"decoder_layers must be between 1 and the encoder's {layers} layers, got {decoder_layers}")
    config = LSGBartConfig(
        vocab_size=source_config.vocab_size, d_model=source_config.hidden_size, encoder_layers=layers,
        decoder_layers=decoder_layers, encoder_attention_heads=source_config.num_attention_heads,
        decoder_attention_heads=source_config.num_attention_heads, encoder_ffn_dim=source_config.intermediate_size,
        decoder_ffn_dim=source_config.intermediate_size, activation_function=source_config.hidden_act,
        max_position_embeddings=max_length, scale_embedding=False, dropout=source_config.hidden_dropout_prob,
        attention_dropout=source_config.attention_probs_dropout_prob, activation_dropout=0.0,
        pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"],
        decoder_start_token_id=ids["bos"], forced_eos_token_id=ids["eos"], forced_bos_token_id=None,
        layer_norm_eps=source_config.layer_norm_eps, architectures=["LSGBartForConditionalGeneration"], **settings,
    )
    model = LSGBartForConditionalGeneration(config).eval()
    model.load_state_dict(_bart_state(encoder.state_dict(), arch, source_config, config, tokenizer, decoder_layers),
                          strict=False)
    model.tie_weights()
    model.generation_config.update(num_beams=4, max_length=64, no_repeat_ngram_size=3, early_stopping=True)
    model.save_pretrained(out)
    tokenizer.model_max_length = max_length
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # BART takes no token types
    tokenizer.save_pretrained(out)
    diff = _check_encoder(encoder, out, source_config)
    return WarmStartReport(src, out, max_length, layers, decoder_layers, diff, time.perf_counter() - start)


def _special_ids(tokenizer) -> dict:
    pick = lambda *ids: next((i for i in ids if i is not None), None)
    ids = {"bos": pick(tokenizer.cls_token_id, tokenizer.bos_token_id),
           "eos": pick(tokenizer.sep_token_id, tokenizer.eos_token_id),
           "pad": tokenizer.pad_token_id, "mask": pick(tokenizer.mask_token_id, tokenizer.cls_token_id)}
    missing = [name for name, value in ids.items() if value is None]
    if missing:
        raise ValueError(f"the tokenizer has no {', '.join(missing)} token: a summarizer needs start, end and pad")
    return ids


def _bart_state(state: dict, arch, source_config, config, tokenizer, decoder_layers: int) -> dict:
    offset = arch.position_offset(source_config)
    words = state["embeddings.word_embeddings.weight"]
    token_type = state.get("embeddings.token_type_embeddings.weight")
    positions = state["embeddings.position_embeddings.weight"][offset:]  # token rows only
    if token_type is not None:
        positions = positions + token_type[0]  # BART has no token types: fold type 0 into the positions
    table = extend_position_table(torch.cat([positions.new_zeros(2, positions.shape[1]), positions]), 2, 2,
                                  config.max_position_embeddings)
    ids = _special_ids(tokenizer)
    out = {"model.shared.weight": words}
    for part in ("encoder", "decoder"):
        out[f"model.{part}.embed_positions.weight"] = table.clone()
        out[f"model.{part}.layernorm_embedding.weight"] = state["embeddings.LayerNorm.weight"]
        out[f"model.{part}.layernorm_embedding.bias"] = state["embeddings.LayerNorm.bias"]
    out["model.encoder.global_embeddings.weight"] = global_embeddings(positions, words, ids["bos"], ids["mask"])
    for index in range(source_config.num_hidden_layers):
        for name, tensor in state.items():
            prefix = f"encoder.layer.{index}."
            if name.startswith(prefix):
                out[f"model.encoder.layers.{index}.{name[len(prefix):]}"] = tensor  # shared layer: same names
        if index < decoder_layers:
            for name, tensor in _layer_weights(state, index).items():
                out[f"model.decoder.layers.{index}.{name}"] = tensor
    return out


def _check_encoder(source, out: str, source_config) -> float:
    """The saved encoder, global tokens off, equals the source encoder on short padded inputs."""
    model = LSGBartForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
    encoder = model.get_encoder()
    encoder.global_tokens_visible = False
    model.config.pass_global_tokens_to_decoder = False
    model.config.pool_with_global = False
    from .verification import random_batch

    length = min(2 * model.config.block_size, source_config.max_position_embeddings - 2)
    ids, mask = random_batch(source_config.vocab_size, source_config.pad_token_id, length)
    with torch.no_grad():
        expected = source(input_ids=ids, attention_mask=mask).last_hidden_state
        actual = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    diff = (expected - actual).abs()[mask.bool()].max().item()
    if diff > 1e-4:
        raise RuntimeError(f"the warm-started encoder differs from {source_config._name_or_path} by {diff:.2e}")
    return diff
