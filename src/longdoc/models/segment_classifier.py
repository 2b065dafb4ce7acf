"""Hierarchical segment classifier: a short encoder per segment, a Transformer over segments,
label attention.

One class serves three methods, chosen by `config.method`, so that users compare them on their
own data with the same code path:
- `segment`: every segment is encoded ([CLS] or mean pooling), a small Transformer aggregates
  the segment vectors (learned segment positions, padding mask), and one learned query per label
  attends over them; the attention weights say which segments drove each label;
- `chunk-pool`: a linear classifier on every segment vector, logits pooled by mean or max over
  the document's segments (the method of BELT / belt-nlp);
- `truncate`: only the first segment is read (first-512-token truncation).

Inputs come in one of two forms:
- token ids of the segments, packed: `input_ids` / `attention_mask` (S, L) hold the S real
  segments of the whole batch in document order and `segment_mask` (B, N) says which of each
  document's N slots are real (S == segment_mask.sum()); a padded (B, N, L) `input_ids` is
  accepted too;
- precomputed segment vectors `segment_embeddings` (B, N, C) with `segment_mask` (frozen-encoder
  training reads them from a cache instead of re-encoding every epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from ..heads import sequence_classification_loss

METHODS = ("segment", "chunk-pool", "truncate")
POOLINGS = ("cls", "mean")
CHUNK_POOLINGS = ("mean", "max")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification")


class SegmentClassifierConfig(PreTrainedConfig):
    """Configuration of a `SegmentClassifier`.

    encoder: the segment encoder's config (a `transformers` config or its dict);
    chunk_size / stride / min_tail: segmentation in tokens (special tokens excluded);
    max_segments: learned segment positions, i.e. the most segments a document keeps;
    pooling: "cls" or "mean" segment vectors; chunk_pooling: "mean" or "max" (chunk-pool);
    aggregator_layers / aggregator_heads / aggregator_ffn: the segment Transformer;
    threshold: probability above which a label is predicted (multi-label);
    freeze_encoder: the encoder was frozen in training (its segment vectors can be cached);
    class_weights: single-label only, one cross-entropy weight per label (None: unweighted); training
    sets them to n / (labels x count) when the family's defaults ask for balanced classes;
    probe_weight: method "segment" only, the share in [0, 1] of the linear probe (`probe`: a linear
    model on [mean; max] of the segment vectors) in the predicted probabilities, the rest from the
    label-attention head (0: the head alone, as fine-tuned and older models; frozen training sets it
    from dev, see docs/classification.md).
    """

    model_type = "longdoc-segment-classifier"

    def __init__(
        self,
        encoder: dict | PreTrainedConfig | None = None,
        method: str = "segment",
        chunk_size: int = 254,
        stride: int | None = None,
        min_tail: int | None = None,
        max_segments: int = 128,
        pooling: str = "mean",
        chunk_pooling: str = "mean",
        aggregator_layers: int = 1,
        aggregator_heads: int | None = None,
        aggregator_ffn: int | None = None,
        aggregator_dropout: float = 0.1,
        classifier_dropout: float = 0.1,
        threshold: float = 0.5,
        freeze_encoder: bool = False,
        encoder_name_or_path: str | None = None,
        class_weights: list[float] | None = None,
        probe_weight: float = 0.0,
        **kwargs,
    ):
        if isinstance(encoder, PreTrainedConfig):
            encoder = encoder.to_dict()
        self.encoder = encoder
        self.method = method
        self.chunk_size = chunk_size
        self.stride = chunk_size if stride is None else stride
        self.min_tail = chunk_size // 8 if min_tail is None else min_tail
        self.max_segments = 1 if method == "truncate" else max_segments
        self.pooling = pooling
        self.chunk_pooling = chunk_pooling
        self.aggregator_layers = aggregator_layers
        self.aggregator_heads = aggregator_heads
        self.aggregator_ffn = aggregator_ffn
        self.aggregator_dropout = aggregator_dropout
        self.classifier_dropout = classifier_dropout
        self.threshold = threshold
        self.freeze_encoder = freeze_encoder
        self.encoder_name_or_path = encoder_name_or_path
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.probe_weight = float(probe_weight)
        super().__init__(**kwargs)
        self.validate_segment_classifier()

    @property
    def encoder_config(self) -> PreTrainedConfig:
        if self.encoder is None:
            raise ValueError("SegmentClassifierConfig has no encoder config; build it with SegmentClassifier.from_encoder")
        fields = dict(self.encoder)
        return AutoConfig.for_model(fields.pop("model_type"), **fields)

    @property
    def hidden_size(self) -> int:
        return self.encoder["hidden_size"]

    @property
    def num_attention_heads(self) -> int:  # the aggregator's heads; keeps transformers' helpers content
        return self.aggregator_heads or _heads_for(self.hidden_size)

    def validate_segment_classifier(self) -> None:
        checks = (
            (self.method, METHODS, "method"),
            (self.pooling, POOLINGS, "pooling"),
            (self.chunk_pooling, CHUNK_POOLINGS, "chunk_pooling"),
        )
        for value, allowed, name in checks:
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type={self.problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold={self.threshold} must be a probability strictly between 0 and 1")
        if self.class_weights is not None and (len(self.class_weights) != self.num_labels
                                               or min(self.class_weights) <= 0):
            raise ValueError(f"class_weights must hold one positive weight per label ({self.num_labels}), got "
                             f"{self.class_weights}")
        if not 0.0 <= self.probe_weight <= 1.0:
            raise ValueError(f"probe_weight={self.probe_weight} must lie in [0, 1] (0: head only, 1: probe only)")
        if self.probe_weight and self.method != "segment":
            raise ValueError(f"probe_weight applies to method='segment' only, not {self.method!r}; leave it 0")
        if self.max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, got {self.max_segments}")
        if self.encoder is not None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"aggregator_heads={self.num_attention_heads} does not divide the encoder's hidden size "
                f"{self.hidden_size}; choose a divisor"
            )
        from ..data.segmentation import Segmentation

        Segmentation(self.chunk_size, self.stride, self.min_tail)  # raises on an inconsistent stride


def _heads_for(hidden: int) -> int:
    """Aggregator heads of about 64 dimensions each that divide the hidden size."""
    for heads in range(max(1, hidden // 64), 0, -1):
        if hidden % heads == 0:
            return heads
    return 1


@dataclass
class SegmentClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, num_labels)
    label_attentions: torch.Tensor | None = None  # (B, num_labels, N): weight of each segment per label
    segment_logits: torch.Tensor | None = None  # (B, N, num_labels), chunk-pool only
    segment_mask: torch.Tensor | None = None  # (B, N) real segments


class LabelAttention(nn.Module):
    """One learned query per label attends over the segment states; a per-label output vector
    turns each label's document vector into its logit."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.key = nn.Linear(hidden_size, hidden_size)
        self.queries = nn.Parameter(torch.empty(num_labels, hidden_size))
        self.output_weight = nn.Parameter(torch.empty(num_labels, hidden_size))
        self.output_bias = nn.Parameter(torch.zeros(num_labels))
        self.dropout = nn.Dropout(dropout)

    def forward(self, states: torch.Tensor, mask: torch.Tensor, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states (B, N, C) aggregated segments, content (B, N, C) each segment's own vector, mask (B, N)
        bool -> logits (B, L), weights (B, L, N).

        Weights are scored on the aggregated states (each segment in the context of the document)
        and average the segments' own vectors, so a label's document vector is literally a weighted
        mean of segments and the weights say which segments it read."""
        keys = torch.tanh(self.key(states))  # (B, N, C)
        scores = torch.einsum("lc,bnc->bln", self.queries, keys) / math.sqrt(states.shape[-1])  # (B, L, N)
        scores = scores.masked_fill(~mask[:, None, :], torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)  # (B, L, N)
        documents = self.dropout(torch.einsum("bln,bnc->blc", weights, content))  # (B, L, C)
        logits = (documents * self.output_weight).sum(-1) + self.output_bias  # (B, L)
        return logits, weights


class SegmentAggregator(nn.Module):
    """Transformer encoder over the segment vectors with learned segment positions."""

    def __init__(self, config: SegmentClassifierConfig):
        super().__init__()
        hidden = config.hidden_size
        self.position_embeddings = nn.Embedding(config.max_segments, hidden)
        self.layer_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(config.aggregator_dropout)
        layer = nn.TransformerEncoderLayer(
            hidden,
            config.num_attention_heads,
            dim_feedforward=config.aggregator_ffn or 2 * hidden,
            dropout=config.aggregator_dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.aggregator_layers, enable_nested_tensor=False)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """vectors (B, N, C), mask (B, N) bool -> (B, N, C)."""
        positions = torch.arange(vectors.shape[1], device=vectors.device)
        hidden = self.dropout(self.layer_norm(vectors + self.position_embeddings(positions)))  # (B, N, C)
        return self.layers(hidden, src_key_padding_mask=~mask)


class SegmentClassifier(PreTrainedModel):
    config_class = SegmentClassifierConfig
    base_model_prefix = "segment_classifier"
    _keys_to_ignore_on_load_missing = [r"^probe\."]  # models saved before the probe (probe_weight 0)
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = []

    def __init__(self, config: SegmentClassifierConfig):
        super().__init__(config)
        self.encoder = _without_pooler(AutoModel.from_config, config.encoder_config)
        hidden = config.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        if config.method == "segment":
            self.aggregator = SegmentAggregator(config)
            self.label_attention = LabelAttention(hidden, config.num_labels, config.classifier_dropout)
            # linear probe on [mean; max] of the raw segment vectors, mixed in by config.probe_weight; fitted after
            # training, so it starts at zero (skip_init: building it draws no random numbers)
            self.probe = nn.utils.skip_init(nn.Linear, 2 * hidden, config.num_labels)
        else:
            self.classifier = nn.Linear(hidden, config.num_labels)
        if config.freeze_encoder:
            self.encoder.requires_grad_(False)
        self.post_init()

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, **config_fields) -> "SegmentClassifier":
        """A classifier whose segment encoder starts from a pretrained checkpoint; the rest is fresh."""
        encoder = _without_pooler(AutoModel.from_pretrained, encoder_name_or_path)
        config = SegmentClassifierConfig(
            encoder=encoder.config, encoder_name_or_path=str(encoder_name_or_path), **config_fields
        )
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    def _init_weights(self, module):
        if isinstance(module, LabelAttention):
            # Small queries over keys of order one: the attention starts near uniform, so the head starts
            # close to a linear model on the mean segment vector (a strong baseline) and learns to pick
            # segments from there. Kernel-docs dev macro-F1 (frozen MiniLM, seeds 42 and 1): std 1
            # .55, std 0 .65/.63, std 0.1 .67/.64; std 0 learns the synthetic needle task too slowly.
            nn.init.normal_(module.queries, std=0.1)
            nn.init.xavier_uniform_(module.key.weight)
            nn.init.zeros_(module.key.bias)
            nn.init.normal_(module.output_weight, std=0.02)
            nn.init.zeros_(module.output_bias)
        elif isinstance(module, SegmentAggregator):
            nn.init.normal_(module.position_embeddings.weight, std=0.02)
        elif module is getattr(self, "probe", None):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        elif module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    # -- segment vectors ------------------------------------------------------------------

    def encode_segments(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(S, L) token ids of S segments -> (S, C) segment vectors ([CLS] or masked mean)."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (S, L, C)
        if self.config.pooling == "cls":
            return states[:, 0]
        weights = attention_mask.to(states.dtype).unsqueeze(-1)  # (S, L, 1)
        return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        segment_mask: torch.Tensor | None = None,
        segment_embeddings: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **unused,
    ) -> SegmentClassifierOutput:
        vectors, segment_mask = self._segment_vectors(input_ids, attention_mask, segment_mask, segment_embeddings)
        vectors = vectors.to(self.dtype) if not torch.is_autocast_enabled(vectors.device.type) else vectors
        weights = segment_logits = None
        if self.config.method == "segment":
            states = self.aggregator(vectors, segment_mask)  # (B, N, C)
            content = self.aggregator.layer_norm(vectors)  # (B, N, C) each segment alone, normalised
            logits, weights = self.label_attention(states, segment_mask, content)
            if self.config.probe_weight:
                logits = self._mix_probe(logits, self.probe(pooled_mean_max(vectors, segment_mask)))
                w = self.config.probe_weight
                weights = (1 - w) * weights + w * self._probe_segment_weights(vectors, segment_mask)
        else:
            segment_logits = self.classifier(self.dropout(vectors))  # (B, N, L)
            logits = _pool_logits(segment_logits, segment_mask, self.config.chunk_pooling)
        loss = None
        if labels is not None and self.config.class_weights and self.config.problem_type == "single_label_classification":
            weights = torch.tensor(self.config.class_weights, dtype=logits.dtype, device=logits.device)
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device).view(-1), weight=weights)
        elif labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config)
        keep = output_attentions if output_attentions is not None else self.config.output_attentions
        return SegmentClassifierOutput(
            loss=loss,
            logits=logits,
            label_attentions=weights if keep else None,
            segment_logits=segment_logits if keep else None,
            segment_mask=segment_mask if keep else None,
        )

    def _mix_probe(self, head: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
        """Logits of the mixture (1 - w) p_head + w p_probe: log-probabilities (single label) or the
        log-odds of the mixed sigmoid probabilities (multi-label), computed in log space."""
        w = self.config.probe_weight
        log_w = torch.log(torch.tensor([1.0 - w, w], dtype=head.dtype, device=head.device))[:, None, None]
        if self.config.problem_type == "multi_label_classification":
            sig = nn.functional.logsigmoid
            positive = torch.logsumexp(log_w + torch.stack([sig(head), sig(probe)]), 0)
            negative = torch.logsumexp(log_w + torch.stack([sig(-head), sig(-probe)]), 0)
            return positive - negative
        return torch.logsumexp(log_w + torch.stack([head.log_softmax(-1), probe.log_softmax(-1)]), 0)

    def _probe_segment_weights(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, N): how much each segment carries each label in the probe, as a softmax over segments of the
        drop of the label's log-probability when the segment is left out of [mean; max] (occlusion, exact and
        cheap: the mean without it and the max of the others come in closed form)."""
        floor = torch.finfo(vectors.dtype).min
        counts = mask.sum(1).to(vectors.dtype)[:, None, None]  # (B, 1, 1)
        total = (vectors * mask[..., None]).sum(1, keepdim=True)  # (B, 1, C)
        mean_without = (total - vectors) / (counts - 1).clamp(min=1)  # (B, N, C)
        two = vectors.masked_fill(~mask[..., None], floor).topk(min(2, vectors.shape[1]), dim=1).values
        second = torch.where(counts >= 2, two[:, -1:], two[:, :1])  # a lone segment: nothing to leave out
        max_without = torch.where(vectors >= two[:, :1], second, two[:, :1])  # (B, N, C)
        full = self.probe(pooled_mean_max(vectors, mask)).log_softmax(-1)  # (B, L)
        without = self.probe(torch.cat([mean_without, max_without], -1)).log_softmax(-1)  # (B, N, L)
        drops = (full[:, None, :] - without).transpose(1, 2)  # (B, L, N)
        return drops.masked_fill(~mask[:, None, :], floor).softmax(-1)

    def _segment_vectors(self, input_ids, attention_mask, segment_mask, segment_embeddings):
        """(B, N, C) segment vectors and the (B, N) bool mask of real segments."""
        if segment_embeddings is not None:
            if segment_mask is None:
                segment_mask = torch.ones(segment_embeddings.shape[:2], dtype=torch.bool, device=segment_embeddings.device)
            vectors, segment_mask = segment_embeddings, segment_mask.bool()
        else:
            if input_ids is None:
                raise ValueError("give input_ids (segment token ids) or segment_embeddings")
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            if input_ids.dim() == 3:  # (B, N, L) padded: real segments are those with any real token
                real = attention_mask.bool().any(-1) if segment_mask is None else segment_mask.bool()
                input_ids, attention_mask, segment_mask = input_ids[real], attention_mask[real], real
            elif segment_mask is None:  # (S, L): one segment per document
                segment_mask = torch.ones(input_ids.shape[0], 1, dtype=torch.bool, device=input_ids.device)
            segment_mask = segment_mask.bool()
            if int(segment_mask.sum()) != input_ids.shape[0]:
                raise ValueError(
                    f"segment_mask marks {int(segment_mask.sum())} real segments but input_ids holds "
                    f"{input_ids.shape[0]}: pack exactly the real segments, in document order"
                )
            encoded = self.encode_segments(input_ids, attention_mask)  # (S, C)
            vectors = encoded.new_zeros(*segment_mask.shape, encoded.shape[-1])  # (B, N, C)
            vectors[segment_mask] = encoded
        if vectors.shape[1] > self.config.max_segments:
            raise ValueError(
                f"documents have {vectors.shape[1]} segments but the model has positions for "
                f"{self.config.max_segments}; segment with max_segments={self.config.max_segments}"
            )
        if not bool(segment_mask[:, 0].all()):
            raise ValueError("every document needs at least one segment, in its first slot")
        return vectors, segment_mask


def pooled_mean_max(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, C) segment vectors, (B, N) mask -> (B, 2C): [mean; max] over the real segments (the probe's input)."""
    weights = mask.to(vectors.dtype)[..., None]
    mean = (vectors * weights).sum(1) / weights.sum(1)
    top = vectors.masked_fill(~mask[..., None], torch.finfo(vectors.dtype).min).amax(1)
    return torch.cat([mean, top], -1)


def _pool_logits(segment_logits: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, N, L) per-segment logits -> (B, L), mean or max over the real segments."""
    if how == "max":
        return segment_logits.masked_fill(~mask[..., None], torch.finfo(segment_logits.dtype).min).amax(1)
    weights = mask.to(segment_logits.dtype)[..., None]  # (B, N, 1)
    return (segment_logits * weights).sum(1) / weights.sum(1)


def _without_pooler(load, source):
    """The encoder without its pooler (never read here) where its class has the switch; the
    checkpoint's unused pooler weights are expected, so the load report is not shown."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        return load(source, add_pooling_layer=False)
    except TypeError:
        return load(source)
    finally:
        logging.set_verbosity(verbosity)


# Auto classes find the classifier by its model_type (AutoTokenizer reads the config to pick a tokenizer).
AutoConfig.register(SegmentClassifierConfig.model_type, SegmentClassifierConfig)
AutoModelForSequenceClassification.register(SegmentClassifierConfig, SegmentClassifier)
