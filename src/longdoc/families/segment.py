"""The segment classifier family: a short encoder reads a document segment by segment, a small
Transformer aggregates the segment vectors and one learned query per label attends over them
(`longdoc.models.segment_classifier`, method "segment"). Its two baselines, "chunk-pool" and
"truncate", are the same model with another `method` (their own modules).

Only the layers above the encoder train with --freeze-encoder: the encoder's segment vectors are
then cached on disk, and a linear probe on [mean; max] of them is mixed in by dev log-loss.
Fine-tuning first warms the head up on those cached vectors (a stage of its own).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer

from ..data.segmentation import Segmentation, SegmentedDocument, check_chunk_size, segment_documents, special_tokens
from ..models.segment_classifier import SegmentClassifier, pooled_mean_max
from ..models.segment_encoding import SegmentVectorCache, encode_documents, pad_segments
from .base import Family, Predictions, TrainingDefaults, encoder_max_tokens, with_labels
from .explanations import OcclusionExplainer


class SegmentFamily(Family):
    """The segment classifier: `method` "segment" here, "chunk-pool" and "truncate" in their modules."""

    method = "segment"
    title = "segment classifier"
    poolings = ("cls", "mean")

    def _build(self, head, source, options):
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder_config = AutoConfig.from_pretrained(source)
        max_tokens = encoder_max_tokens(encoder_config, tokenizer)
        chunk_size = options.get("chunk_size") or default_chunk_size(max_tokens, tokenizer)
        check_chunk_size(tokenizer, chunk_size, max_tokens)
        fields = dict(method=self.method, chunk_size=chunk_size, freeze_encoder=bool(options.get("freeze_encoder")))
        for key in ("stride", "pooling", "chunk_pooling", "max_segments", "threshold"):
            if options.get(key) is not None:
                fields[key] = options[key]
        fields.update(options.get("config_overrides") or {})
        model = SegmentClassifier.from_encoder(source, **fields, **(options.get("head_config") or {}))
        return model, tokenizer

    def _load(self, model_dir, head, fields, dtype):
        return SegmentClassifier.from_pretrained(model_dir, dtype=dtype)

    def defaults(self, frozen):
        if frozen:  # saved at the lowest dev loss: mean rank 3.8 over 5 set variants, by dev macro-F1 6.4 (benchmarks/results/tuning)
            return TrainingDefaults(epochs=40, learning_rate=1e-3, batch_size=16, select_metric="loss")
        return TrainingDefaults(epochs=4, learning_rate=5e-5, batch_size=4, head_learning_rate=1e-3)

    def fit_probe(self, model, train_items, dev_items, collate):
        """Logistic regression on standardized [mean; max] of the cached training segment vectors (C of the
        lowest dev log-loss), folded into `model.probe`; `probe_weight` then set to the mix of head and probe
        of the lowest dev log-loss (benchmarks/results/tuning/frozen_defaults.md: the head alone overfits
        small training sets, where the probe does better). Single-label segment models only."""
        if self.method != "segment" or model.config.problem_type != "single_label_classification":
            return None
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        def pooled(items):
            batch = collate([{"segment_embeddings": item["segment_embeddings"]} for item in items])
            return pooled_mean_max(batch["segment_embeddings"].double(), batch["segment_mask"]).numpy()

        train_x, dev_x = pooled(train_items), pooled(dev_items)
        train_y, dev_y = np.array([i["labels"] for i in train_items]), np.array([i["labels"] for i in dev_items])
        scaler = StandardScaler().fit(train_x)
        fits = {c: LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(train_x), train_y) for c in PROBE_C}
        losses = {c: _log_loss(_full_probabilities(f, scaler.transform(dev_x), model.config.num_labels), dev_y)
                  for c, f in fits.items()}
        c = min(PROBE_C, key=losses.get)
        _fold_probe(model.probe, fits[c], scaler, model.config.num_labels)
        probs = {}
        for name, weight in (("head", 0.0), ("probe", 1.0)):
            model.config.probe_weight = weight
            probs[name] = cached_item_logits(model, dev_items, collate).softmax(-1).numpy()
        mixes = {w: (1 - w) * probs["head"] + w * probs["probe"] for w in PROBE_WEIGHTS}
        weight = min(PROBE_WEIGHTS, key=lambda w: (_log_loss(mixes[w], dev_y), w))  # a tie keeps the head
        model.config.probe_weight = weight
        scores = {name: {"macro_f1": _macro_f1(dev_y, p), "log_loss": _log_loss(p, dev_y)}
                  for name, p in (("head", mixes[0.0]), ("probe", mixes[1.0]), ("chosen", mixes[weight]))}
        dev_logits = cached_item_logits(model, dev_items, collate).numpy()
        return {"probe_C": c, "probe_weight": weight, "dev": scores, "dev_logits": dev_logits}

    def segmentation(self, config) -> Segmentation:
        return Segmentation(config.chunk_size, config.stride, config.min_tail, config.max_segments)

    def segments(self, model, tokenizer, texts) -> list[SegmentedDocument]:
        documents = segment_documents(texts, tokenizer, self.segmentation(model.config))
        cut = [d for d in documents if d.dropped_segments]
        if cut and self.method != "truncate":
            config = model.config
            warnings.warn(
                f"{len(cut)} of {len(documents)} documents are longer than max_segments={config.max_segments} "
                f"segments of {config.chunk_size} tokens; only their first {config.max_segments} segments are read "
                f"({sum(d.dropped_segments for d in cut)} segments left out). Train with a larger --max-segments to "
                f"read them whole",
                stacklevel=2,
            )
        return documents

    def training_items(self, model, tokenizer, texts, targets, options):
        documents = self.segments(model, tokenizer, texts)
        items = [{"segments": d.segments, "labels": t} for d, t in zip(documents, targets)]
        return self.head_warmup_items(model, tokenizer, items, options) if model.config.freeze_encoder else items

    def head_warmup_items(self, model, tokenizer, items, options):
        """Cached segment vectors of the encoder as it is (the frozen-encoder inputs)."""
        cache = SegmentVectorCache(model, options.get("cache_dir"), bf16=options.get("bf16"))
        vectors = cache.vectors([item["segments"] for item in items], tokenizer.pad_token_id,
                                progress=options.get("progress", "encoding segments"))
        return [{"segment_embeddings": v, "labels": item["labels"]} for v, item in zip(vectors, items)]

    def collate(self, model, tokenizer):
        pad = tokenizer.pad_token_id

        def collate(items: list[dict]) -> dict:
            batch = {}
            counts = [len(item.get("segments", item.get("segment_embeddings"))) for item in items]
            mask = torch.arange(max(counts))[None, :] < torch.tensor(counts)[:, None]  # (B, N)
            if "segment_embeddings" in items[0]:
                vectors = torch.zeros(len(items), max(counts), items[0]["segment_embeddings"].shape[-1])
                vectors[mask] = torch.cat([item["segment_embeddings"] for item in items])
                batch["segment_embeddings"] = vectors  # (B, N, C)
            else:
                ids, attention = pad_segments([s for item in items for s in item["segments"]], pad)  # (S, L)
                batch.update(input_ids=ids, attention_mask=attention)
            batch["segment_mask"] = mask
            return with_labels(batch, items)

        return collate

    @torch.inference_mode()
    def predict(self, model, tokenizer, texts, explain=False, bf16=None, progress=None):
        documents = self.segments(model, tokenizer, texts)
        vectors = encode_documents(model, [d.segments for d in documents], tokenizer.pad_token_id, bf16=bf16,
                                   progress=progress)
        collate = self.collate(model, tokenizer)
        logits, explanations = [], []
        model.eval()
        for start in range(0, len(vectors), 64):
            batch = collate([{"segment_embeddings": v} for v in vectors[start : start + 64]])
            out = model(**{k: v.to(model.device) for k, v in batch.items()}, output_attentions=True)
            logits.append(out.logits.float().cpu())
            if explain:
                explanations.extend(_segment_weights(out, model.config))
        return Predictions(
            logits=torch.cat(logits).numpy(),
            explanations=explanations if explain else None,
            segment_spans=[d.char_spans for d in documents],
            tokens=sum(sum(len(s) for s in d.segments) for d in documents),
            segment_vectors=vectors if explain else None,
        )

    def explain(self, model, tokenizer, texts, predictions, labels, probabilities, top_segments=3, top_sentences=3,
                bf16=None, progress=None):
        """The top segments of each label by its weights, and their sentences scored by occlusion
        (`longdoc.families.explanations`: the drop of the label's log-odds without the sentence)."""
        from tqdm.auto import tqdm

        if not tokenizer.is_fast:
            raise ValueError(f"{type(tokenizer).__name__} gives no character offsets, which explanations need to "
                             f"place sentences in segments: load the model's fast tokenizer (use_fast=True)")
        explainer = OcclusionExplainer(model, tokenizer, self.segmentation(model.config),
                                       multi_label=model.config.problem_type == "multi_label_classification", bf16=bf16)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        results = []
        for row in tqdm(range(len(texts)), desc=progress, disable=progress is None):
            scores = {name: float(p) for name, p in zip(names, probabilities[row])}
            results.append(explainer.explain(texts[row], predictions.segment_vectors[row], predictions.explanations[row],
                                             scores, labels[row], top_segments, top_sentences))
        return results


PROBE_C = (0.01, 0.1, 1.0, 10.0)  # the probe's inverse regularisation, chosen by dev log-loss
# share of the probe in the mixed probabilities, chosen by dev log-loss: head, even mix or probe ranked first of five
# combinations over 9 set variants (benchmarks/results/tuning/frozen_defaults.md; a finer grid ranked 4th)
PROBE_WEIGHTS = (0.0, 0.5, 1.0)


def _fold_probe(probe: torch.nn.Linear, fit, scaler, num_labels: int) -> None:
    """Write the scikit-learn model (on standardized features) into `probe` (on raw features):
    w (x - mean) / scale + b = (w / scale) x + (b - w . mean / scale). A binary fit's one row is the logit of
    its second class (the first gets 0); a label absent from training gets a large negative bias."""
    coef, intercept = fit.coef_, fit.intercept_
    if coef.shape[0] == 1:
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight = np.zeros((num_labels, coef.shape[1]))
    bias = np.full(num_labels, -30.0)
    weight[fit.classes_] = coef / scaler.scale_
    bias[fit.classes_] = intercept - weight[fit.classes_] @ scaler.mean_
    with torch.no_grad():
        probe.weight.copy_(torch.from_numpy(weight))
        probe.bias.copy_(torch.from_numpy(bias))


def _full_probabilities(fit, x: np.ndarray, num_labels: int) -> np.ndarray:
    out = np.zeros((len(x), num_labels))
    out[:, fit.classes_] = fit.predict_proba(x)
    return out


@torch.inference_mode()
def cached_item_logits(model, items: list[dict], collate) -> torch.Tensor:
    model.eval()
    logits = []
    for start in range(0, len(items), 64):
        batch = collate([{"segment_embeddings": i["segment_embeddings"]} for i in items[start : start + 64]])
        logits.append(model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().cpu())
    return torch.cat(logits)


def _log_loss(probs: np.ndarray, gold: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(gold)), gold], 1e-12, None)).mean())


def _macro_f1(gold: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, probs.argmax(1), average="macro", zero_division=0))


def _segment_weights(out, config) -> list[dict[str, list[tuple[float, int]]]]:
    """Per document, per label: (weight, segment index) of every real segment, largest first."""
    mask = out.segment_mask.cpu()
    if out.label_attentions is not None:
        weights = out.label_attentions.float().cpu()  # (B, L, N)
    else:  # chunk-pool / truncate: each segment's share of the label's pooled logit, as a softmax
        scores = out.segment_logits.float().cpu().transpose(1, 2)  # (B, L, N)
        weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
    result = []
    for row in range(weights.shape[0]):
        real = int(mask[row].sum())
        per_label = {}
        for label in range(weights.shape[1]):
            pairs = [(float(weights[row, label, n]), n) for n in range(real)]
            per_label[config.id2label[label]] = sorted(pairs, reverse=True)
        result.append(per_label)
    return result


def default_chunk_size(max_tokens: int, tokenizer) -> int:
    """Segments of 256 tokens including special tokens (or the encoder's whole length when shorter)."""
    specials = sum(map(len, special_tokens(tokenizer)))
    return min(256, max_tokens) - specials
