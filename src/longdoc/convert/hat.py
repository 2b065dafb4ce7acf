"""Conversion target: a short BERT / RoBERTa / ELECTRA / MPNet encoder -> a HAT, warm-started the
ad-hoc way (Chalkidis et al.): source layer i goes into both the segment-wise and the cross-segment
encoder of HAT layer i (layers beyond the source's depth take its last layer); the token position
table gives segment token k the source's position k; segment positions take the source's rows
1 .. N+1 (row 0, for empty segments, the source's row 1); the masked-LM head is carried over.

Verification: a HAT whose layers are all segment-wise, built from the converted weights (layer i's
segment-wise encoder, or its cross-segment one where the layout has none), must give every segment
exactly what the source gives that segment alone; every cross-segment encoder must hold its source
layer's weights.
"""

from __future__ import annotations

import time

import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..data.hat_segments import hat_special_ids
from ..models import HATConfig, HATForMaskedLM, HATModel
from ..models.hat_config import HIERARCHICAL_BASE_LAYOUT, layout_string, parse_layout
from ..models.lsg_mpnet import MPNET_LAYER
from ..models.weight_names import rename_keys
from .positions import extend_position_table
from .sources import SourceArchitecture
from .targets import ConversionTarget
from .verification import TOLERANCE, VerificationError, VerificationReport

DEFAULTS = dict(layout=HIERARCHICAL_BASE_LAYOUT, max_sentences=None, max_sentence_size=128)
SOURCES = ("bert", "roberta", "electra", "mpnet")
PARTS = ("sentence_encoder", "document_encoder")


class HATTarget(ConversionTarget):
    name = "hat"
    description = "hierarchical attention: segment-wise + cross-segment encoders, longdoc.HAT* models"

    def check_settings(self, max_length: int, settings: dict) -> dict:
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"hat conversion does not take {sorted(unknown)}; its settings are {sorted(DEFAULTS)}")
        merged = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
        merged["layout"] = layout_string(parse_layout(merged["layout"]))  # raises with the grammar
        size = merged["max_sentence_size"]
        if size < 2:
            raise ValueError(f"max_sentence_size={size}: a segment needs its first token and at least one more")
        if merged["max_sentences"] is None:
            merged["max_sentences"] = max(1, -(-max_length // size))
        if merged["max_sentences"] < 1:
            raise ValueError(f"max_sentences must be at least 1, got {merged['max_sentences']}")
        return merged

    def resolve_length(self, max_length: int, settings: dict) -> int:
        return settings["max_sentences"] * settings["max_sentence_size"]

    def check_source(self, arch: SourceArchitecture) -> None:
        if arch.name not in SOURCES:
            raise ValueError(f"cannot convert a {arch.name} checkpoint to HAT: supported are {', '.join(SOURCES)} "
                             f"encoders")

    def check_length(self, max_length: int, source_max_tokens: int) -> None:
        """A HAT reads more than its source by having more segments: any length is acceptable."""

    def model_class(self, masked_lm: bool, arch: SourceArchitecture) -> type[PreTrainedModel]:
        return HATForMaskedLM if masked_lm else HATModel

    def convert_model(self, source: PreTrainedModel, arch: SourceArchitecture, tokenizer: PreTrainedTokenizerBase,
                      max_length: int, settings: dict) -> tuple[PreTrainedModel, list[str]]:
        src_config = source.config
        masked_lm = arch.has_masked_lm_head(src_config)
        config = hat_config(src_config, arch, settings, masked_lm)
        src = {}
        for key, tensor in source.state_dict().items():
            name = arch.longformer_key(key, "")  # BERT-layout names without the task prefix
            if name is not None:
                src[name] = tensor
        if arch.name == "mpnet":
            src = rename_keys(src, MPNET_LAYER)
        state, copied_from = hat_state(src, config, arch, src_config)
        model_class = HATForMaskedLM if masked_lm else HATModel
        prefix = "hi_transformer." if masked_lm else ""
        model = model_class(config).to(source.dtype)
        missing, unexpected = model.load_state_dict({prefix + k if not k.startswith("lm_head.") else k: v
                                                     for k, v in state.items()}, strict=False)
        if unexpected:
            raise ValueError(f"the {arch.name} key map produced names a HAT does not have: {unexpected}")
        unfilled = sorted(set(missing) - {"lm_head.decoder.weight", "lm_head.decoder.bias"})
        if unfilled:
            raise ValueError(f"the {arch.name} source provides no weights for {unfilled}")
        model.tie_weights()
        notes = [f"layer {i} (copied from source layer {j}: the layout is deeper than the source)"
                 for i, j in copied_from.items() if i != j]
        return model.eval(), notes

    def exact_length(self, config) -> int:
        return config.max_sentence_size

    def verify(self, source: str, converted: str, tolerance: float = TOLERANCE, seed: int = 0) -> VerificationReport:
        return verify_hat(source, converted, tolerance, seed)


def hat_config(src_config, arch: SourceArchitecture, settings: dict, masked_lm: bool) -> HATConfig:
    size, count = settings["max_sentence_size"], settings["max_sentences"]
    pad = src_config.pad_token_id
    source_tokens = arch.max_tokens(src_config)
    if size > source_tokens:
        raise ValueError(
            f"max_sentence_size={size} does not fit the source's positions: it reads at most {source_tokens} tokens; "
            f"use --max-sentence-size {min(128, source_tokens)} (or at most {source_tokens})"
        )
    if count + 2 > src_config.max_position_embeddings:
        raise ValueError(
            f"max_sentences={count} needs {count + 2} rows of the source's position table for segment positions, "
            f"which has {src_config.max_position_embeddings}: use --max-sentences {src_config.max_position_embeddings - 2} "
            f"or fewer"
        )
    layers = parse_layout(settings["layout"])
    fields = dict(
        vocab_size=src_config.vocab_size, hidden_size=src_config.hidden_size,
        num_attention_heads=src_config.num_attention_heads, intermediate_size=src_config.intermediate_size,
        hidden_act=src_config.hidden_act, hidden_dropout_prob=src_config.hidden_dropout_prob,
        attention_probs_dropout_prob=src_config.attention_probs_dropout_prob,
        layer_norm_eps=src_config.layer_norm_eps, initializer_range=src_config.initializer_range,
        pad_token_id=pad, bos_token_id=src_config.bos_token_id, eos_token_id=src_config.eos_token_id,
        type_vocab_size=getattr(src_config, "type_vocab_size", 1),
        max_sentence_size=size, max_sentences=count, model_max_length=size * count,
        max_position_embeddings=size + pad + 1, encoder_layout=settings["layout"], num_hidden_layers=len(layers),
        architectures=[(HATForMaskedLM if masked_lm else HATModel).__name__],
    )
    if arch.name == "mpnet":
        fields["relative_attention_num_buckets"] = src_config.relative_attention_num_buckets
    return HATConfig(**fields)


def hat_state(src: dict, config: HATConfig, arch: SourceArchitecture, src_config) -> tuple[dict, dict[int, int]]:
    """HAT weights (names inside HATModel, plus `lm_head.*`) from BERT-layout source weights."""
    pad = config.pad_token_id
    state = {f"embeddings.{k}": src[f"embeddings.{k}"] for k in
             ("word_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")}
    token_types = src.get("embeddings.token_type_embeddings.weight")
    state["embeddings.token_type_embeddings.weight"] = (
        token_types if token_types is not None else torch.zeros(1, config.hidden_size, dtype=state[
            "embeddings.word_embeddings.weight"].dtype))
    positions = src["embeddings.position_embeddings.weight"]
    state["embeddings.position_embeddings.weight"] = extend_position_table(
        positions, arch.position_offset(src_config), pad + 1, config.max_sentence_size)
    depth = src_config.num_hidden_layers
    copied_from = {}
    cross = [i for i, (_, d) in enumerate(config.layers) if d]
    for i, (segment_wise, cross_segment) in enumerate(config.layers):
        j = copied_from[i] = min(i, depth - 1)
        layer = {k.removeprefix(f"encoder.layer.{j}."): v for k, v in src.items()
                 if k.startswith(f"encoder.layer.{j}.")}
        for part, present in zip(PARTS, (segment_wise, cross_segment)):
            if present:
                state.update({f"encoder.layer.{i}.{part}.{k}": v for k, v in layer.items()})
    if cross:
        state[f"encoder.layer.{cross[0]}.position_embeddings.weight"] = positions[1: config.max_sentences + 2].clone()
    if "encoder.relative_attention_bias.weight" in src:
        state["encoder.relative_attention_bias.weight"] = src["encoder.relative_attention_bias.weight"]
    state.update({k: v for k, v in src.items() if k.startswith("lm_head.")})
    return state, copied_from


def segment_batch(vocab_size: int, pad: int, first_id: int, size: int, segments: int, seed: int):
    """(input_ids, attention_mask), (2, segments * size): random real tokens after each segment's
    first token; row 1 has padded segments and, when there are several, an empty last one."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size - 1, (2, segments, size), generator=generator)
    ids = ids + (ids >= pad).long()
    ids[:, :, 0] = first_id
    mask = torch.ones_like(ids)
    lengths = torch.randint(2, size + 1, (segments,), generator=generator)
    for n, length in enumerate(lengths.tolist()):
        ids[1, n, length:], mask[1, n, length:] = pad, 0
    if segments > 1:
        ids[1, -1], mask[1, -1] = pad, 0
    return ids.reshape(2, -1), mask.reshape(2, -1)


def verify_hat(source: str, converted: str, tolerance: float = TOLERANCE, seed: int = 0) -> VerificationReport:
    from .sources import source_architecture

    start = time.perf_counter()
    arch = source_architecture(AutoConfig.from_pretrained(source))
    source_model = arch.load(source, dtype=torch.float32).eval()
    masked_lm = arch.has_masked_lm_head(source_model.config)
    hat = (HATForMaskedLM if masked_lm else HATModel).from_pretrained(converted, dtype=torch.float32).eval()
    base = hat.hi_transformer if masked_lm else hat
    config = hat.config
    depth = min(config.num_hidden_layers, source_model.config.num_hidden_layers)
    flat = segment_wise_copy(base, depth)
    size = config.max_sentence_size
    segments = min(config.max_sentences, 3)
    first, _ = hat_special_ids(AutoTokenizer.from_pretrained(converted))  # [CLS] / <s>
    ids, mask = segment_batch(config.vocab_size, config.pad_token_id, first, size, segments, seed)
    seg_ids, seg_mask = ids.view(-1, size), mask.view(-1, size)
    keep = seg_mask.bool().any(1)  # the source cannot read an empty segment
    real = seg_mask[keep].bool()
    with torch.no_grad():
        src_encoder = source_model.base_model
        expected = src_encoder(input_ids=seg_ids[keep], attention_mask=seg_mask[keep],
                               output_hidden_states=True).hidden_states[depth]  # after the layers HAT has
        actual = flat(input_ids=ids, attention_mask=mask).last_hidden_state.view(-1, size, config.hidden_size)[keep]
        hidden_diff = (expected - actual).abs()[real].max().item()
        logits_diff = None
        if masked_lm and depth == source_model.config.num_hidden_layers:
            src_logits = source_model(input_ids=seg_ids[keep], attention_mask=seg_mask[keep]).logits
            hat_logits = hat.lm_head(actual)
            logits_diff = (src_logits - hat_logits).abs()[real].max().item()
    weight_diff = cross_segment_weight_diff(base, source_model, arch)
    report = VerificationReport(
        max_abs_diff=max(hidden_diff, weight_diff), logits_max_abs_diff=logits_diff,
        lengths=tuple(int(n) for n in mask.sum(1)), tolerance=tolerance, seconds=time.perf_counter() - start)
    if not report.passed:
        raise VerificationError(
            f"the converted HAT at {converted} does not reproduce {source} segment by segment: {report} "
            f"(cross-segment weights differ by {weight_diff:.2e}). Please report this with the source's config.json"
        )
    return report


def segment_wise_copy(base: HATModel, depth: int) -> HATModel:
    """A HAT of `depth` segment-wise layers with the converted weights: layer i's segment-wise encoder,
    or its cross-segment one where the layout has none."""
    fields = base.config.to_dict()
    for key in ("encoder_layout", "num_hidden_layers", "model_type", "transformers_version", "architectures"):
        fields.pop(key, None)
    config = HATConfig(**fields, encoder_layout="|".join(["S"] * depth))
    flat = HATModel(config).eval()
    flat.embeddings.load_state_dict(base.embeddings.state_dict())
    if hasattr(base.encoder, "relative_attention_bias"):
        flat.encoder.relative_attention_bias.load_state_dict(base.encoder.relative_attention_bias.state_dict())
    for i in range(depth):
        layer = base.encoder.layer[i]
        encoder = getattr(layer, "sentence_encoder", None) or layer.document_encoder
        flat.encoder.layer[i].sentence_encoder.load_state_dict(encoder.state_dict())
    return flat


def cross_segment_weight_diff(base: HATModel, source_model, arch: SourceArchitecture) -> float:
    """Largest difference between a cross-segment encoder's weights and its source layer's."""
    layers = source_model.base_model.encoder.layer
    worst = 0.0
    for i, hat_layer in enumerate(base.encoder.layer):
        if not hasattr(hat_layer, "document_encoder"):
            continue
        source_state = {f"x.{k}": v for k, v in layers[min(i, len(layers) - 1)].state_dict().items()}
        if arch.name == "mpnet":
            source_state = rename_keys(source_state, MPNET_LAYER)
        for key, value in hat_layer.document_encoder.state_dict().items():
            worst = max(worst, (value - source_state[f"x.{key}"]).abs().max().item())
    return worst
