"""HAT configuration: the layer layout (which layers run a segment-wise and/or a cross-segment
encoder) and the segment geometry, validated in one place.

Layout grammar: `layout := layer ("|" layer)*`, `layer := "S" | "D" | "SD"`; S = segment-wise
encoder over every segment's tokens, D = cross-segment encoder over the segments' first tokens,
SD = both, S first. The published checkpoints store the same thing as a dict,
`encoder_layout = {"0": {"sentence_encoder": true, "document_encoder": false}, ...}`; both forms
are accepted and the dict form is what a saved config.json holds (so the authors' code reads it).
"""

from __future__ import annotations

from transformers import PretrainedConfig

LAYOUT_GRAMMAR = 'layout := layer ("|" layer)* ; layer := "S" | "D" | "SD"  (e.g. "S|S|SD|S|S|SD")'
LAYER_KINDS = {"S": (True, False), "D": (False, True), "SD": (True, True)}
POOLINGS = ("max", "first", "last", "attentive")

# the published checkpoints' layouts
HIERARCHICAL_BASE_LAYOUT = "|".join(["S", "S", "SD"] * 4)
ADHOC_BASE_LAYOUT = "|".join(["S"] * 11 + ["SD", "D", "D", "D"])


def parse_layout(layout) -> tuple[tuple[bool, bool], ...]:
    """A layout string, or the published dict form, as one (segment_wise, cross_segment) pair per layer."""
    if isinstance(layout, dict):
        return _parse_layout_dict(layout)
    if isinstance(layout, (list, tuple)) and all(isinstance(x, str) for x in layout):
        layout = "|".join(layout)
    if not isinstance(layout, str) or not layout.strip():
        raise ValueError(f"the HAT layout must be a string such as 'S|S|SD', got {layout!r}; grammar: {LAYOUT_GRAMMAR}")
    layers = []
    for position, token in enumerate(layout.split("|")):
        kind = token.strip().upper()
        if kind not in LAYER_KINDS:
            raise ValueError(
                f"HAT layout {layout!r}: layer {position} is {token!r}, which is not a layer kind; "
                f"grammar: {LAYOUT_GRAMMAR} (S = segment-wise, D = cross-segment, SD = both)"
            )
        layers.append(LAYER_KINDS[kind])
    return tuple(layers)


def _parse_layout_dict(layout: dict) -> tuple[tuple[bool, bool], ...]:
    if sorted(map(str, layout)) != sorted(str(i) for i in range(len(layout))):
        raise ValueError(f"encoder_layout keys must be the layer numbers 0..{len(layout) - 1}, got {sorted(layout)}")
    layers = []
    for i in range(len(layout)):
        entry = layout.get(str(i), layout.get(i))
        if not isinstance(entry, dict) or not {"sentence_encoder", "document_encoder"} <= set(entry):
            raise ValueError(f"encoder_layout[{i}] must be {{'sentence_encoder': bool, 'document_encoder': bool}}, "
                             f"got {entry!r}")
        pair = (bool(entry["sentence_encoder"]), bool(entry["document_encoder"]))
        if pair == (False, False):
            raise ValueError(f"encoder_layout[{i}] runs neither encoder: every layer needs S, D or SD")
        layers.append(pair)
    return tuple(layers)


def layout_string(layers) -> str:
    names = {pair: kind for kind, pair in LAYER_KINDS.items()}
    return "|".join(names[tuple(pair)] for pair in layers)


def layout_dict(layers) -> dict:
    return {str(i): {"sentence_encoder": s, "document_encoder": d} for i, (s, d) in enumerate(layers)}


def default_layout(num_layers: int) -> str:
    """Every third layer adds a cross-segment encoder (the hierarchical-transformer-base pattern); the
    last layer does when fewer than three layers."""
    kinds = ["SD" if (i + 1) % 3 == 0 else "S" for i in range(num_layers)]
    if "SD" not in kinds:
        kinds[-1] = "SD"
    return "|".join(kinds)


class HATConfig(PretrainedConfig):
    r"""Configuration of a HAT (hierarchical attention transformer).

    Beyond the RoBERTa fields:
    - `encoder_layout`: a layout string (`"S|S|SD|S|S|SD"`) or the published dict form.
      Its length must equal `num_hidden_layers` (which defaults to the layout's length).
    - `max_sentence_size` (alias `max_sentence_length`, the published name): tokens per segment,
      the segment's first token included.
    - `max_sentences`: the most segments a document may have.
    - `segment_pooling`: how classification heads pool the segments' first tokens (`max`, `first`,
      `last`, `attentive`); unset, each head takes its `pooling=` argument or the reference's default
      (max; last for multiple choice). A head records its choice here, so a saved attentive pooler
      reloads as one. (Not named `pooling`: the authors' code takes `pooling=` as a constructor
      argument, and `from_pretrained` would route it into a config field of that name instead.)
    - `pool_empty_segments`: True (the reference) pools every segment slot of the input, empty ones
      included, so a document's logits depend on how far it was padded; False pools only its real
      segments (`last` = its last real segment, `attentive` masked), the same in any batch. The
      classifiers `longdoc train --family hat` builds use False.
    - `legacy_segment_positions`: the published checkpoints were trained before a fix in the authors'
      code after which segment positions reach the cross-segment encoder; True reproduces the old
      behaviour (no segment positions at all). Default False: the fixed behaviour of the reference.
    - `relative_attention_num_buckets`: set (e.g. 32) for a HAT converted from MPNet, whose
      segment-wise attention then adds MPNet's relative position bias within each segment.
    """

    model_type = "hierarchical-transformer"

    def __init__(
        self,
        vocab_size=30522,
        hidden_size=768,
        max_sentences=64,
        max_sentence_size=128,
        model_max_length=8192,
        num_hidden_layers=None,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="absolute",
        encoder_layout=None,
        use_cache=True,
        classifier_dropout=None,
        segment_pooling=None,
        pool_empty_segments=True,
        legacy_segment_positions=False,
        relative_attention_num_buckets=None,
        tie_word_embeddings=True,
        **kwargs,
    ):
        length_alias = kwargs.pop("max_sentence_length", None)
        segment_pooling = kwargs.pop("pooling", None) or segment_pooling  # the issue's / a user's name
        if kwargs.get("layout") is not None:  # HATConfig(layout="S|SD") names the same thing
            if encoder_layout is not None:
                raise ValueError("give the layout once: layout= or encoder_layout=, not both")
            encoder_layout = kwargs.pop("layout")
        kwargs.pop("layout", None)
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        if length_alias is not None and max_sentence_size not in (128, length_alias):
            raise ValueError(f"max_sentence_size={max_sentence_size} and max_sentence_length={length_alias} disagree: "
                             f"they name the same thing (tokens per segment); give one")
        self.tie_word_embeddings = tie_word_embeddings  # the masked-LM decoder shares the word embeddings
        self.max_sentence_size = int(length_alias if length_alias is not None else max_sentence_size)
        if encoder_layout is None:
            encoder_layout = default_layout(num_hidden_layers or 12)
        layers = parse_layout(encoder_layout)
        if num_hidden_layers is None:
            num_hidden_layers = len(layers)
        if len(layers) != num_hidden_layers:
            raise ValueError(
                f"the layout {layout_string(layers)!r} has {len(layers)} layers but num_hidden_layers="
                f"{num_hidden_layers}: give one layer kind per layer, or leave num_hidden_layers out to take the "
                f"layout's length"
            )
        self.encoder_layout = layout_dict(layers)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_sentences = max_sentences
        self.model_max_length = model_max_length
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.hidden_act = hidden_act
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.position_embedding_type = position_embedding_type
        self.use_cache = use_cache
        self.classifier_dropout = classifier_dropout
        self.segment_pooling = segment_pooling
        self.pool_empty_segments = bool(pool_empty_segments)
        self.legacy_segment_positions = bool(legacy_segment_positions)
        self.relative_attention_num_buckets = relative_attention_num_buckets
        self.validate_hat()

    @property
    def pooling(self) -> str | None:
        """`segment_pooling` under the name `HATConfig(pooling=...)` takes."""
        return self.segment_pooling

    @pooling.setter
    def pooling(self, value: str | None) -> None:
        self.segment_pooling = value

    @property
    def max_sentence_length(self) -> int:
        """The published name of `max_sentence_size` (the authors' code reads this one)."""
        return self.max_sentence_size

    @property
    def layers(self) -> tuple[tuple[bool, bool], ...]:
        return parse_layout(self.encoder_layout)

    @property
    def layout(self) -> str:
        return layout_string(self.layers)

    @layout.setter
    def layout(self, value) -> None:
        layers = parse_layout(value)
        if len(layers) != self.num_hidden_layers:
            raise ValueError(f"the layout {layout_string(layers)!r} has {len(layers)} layers but this model has "
                             f"{self.num_hidden_layers}: give one layer kind per layer")
        self.encoder_layout = layout_dict(layers)

    def validate_hat(self) -> None:
        if self.max_sentence_size < 2:
            raise ValueError(f"max_sentence_size={self.max_sentence_size}: a segment needs its first token and at "
                             f"least one more (128 is the published size)")
        if self.max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, got {self.max_sentences}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads="
                             f"{self.num_attention_heads}")
        if self.segment_pooling is not None and self.segment_pooling not in POOLINGS:
            raise ValueError(f"segment_pooling={self.segment_pooling!r} is not one of {', '.join(POOLINGS)}")
        if self.position_embedding_type != "absolute":
            raise ValueError(f"position_embedding_type={self.position_embedding_type!r}: HAT uses absolute "
                             f"positions that restart in every segment; use 'absolute'")

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["max_sentence_length"] = self.max_sentence_size  # the published field, read by the authors' code
        return out
