"""Search for the frozen segment classifier's defaults by MEAN RANK over several real sets, on dev
splits only (the test splits are never read here).

Inputs: the files `segment_vectors.py` writes (cached frozen MiniLM segment vectors of train and dev),
so each configuration trains only the layers above the encoder, in seconds. The loop is the one
`longdoc train` runs through `transformers`' Trainer, written out: AdamW (weight decay on every
parameter, as the Trainer's optimizer here), linear warm-up over 10% of the steps then linear decay,
shuffled batches, one dev evaluation per epoch, the same SegmentClassifier head and loss.

Why not just the best dev macro-F1: with 70 to 150 dev documents, the epoch (or configuration)
with the best dev score is partly the luckiest one. So every configuration is scored honestly: the
dev split is cut in two random halves, the model is selected on one half by the configuration's
rule (best macro-F1, lowest loss, ...) and scored on the other, both ways, over several seeds and
cuts. A "small" variant of every set trains on half its training split (the hidden set the defaults
failed on had ~500 training documents for 6 classes and 70 dev documents).

    .venv/bin/python benchmarks/tuning/tune_frozen_defaults.py VECTORS.pt ... --out benchmarks/results/tuning
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from longdoc.models.segment_classifier import SegmentClassifier, SegmentClassifierConfig


@dataclass(frozen=True)
class Candidate:
    name: str
    epochs: int = 40
    learning_rate: float = 1e-3
    batch_size: int = 16
    weight_decay: float = 0.01
    select: str = "f1"  # f1: best dev macro-F1 epoch; loss: lowest dev loss epoch; last: the last epoch
    config: dict = field(default_factory=dict)  # SegmentClassifierConfig fields
    balanced: bool = False  # cross-entropy weighted by n / (classes x class count)


DROPOUT_03 = dict(aggregator_dropout=0.3, classifier_dropout=0.3)
TRAININGS = [  # few, on purpose: 2 shared cores; AdamW's weight decay is decoupled (lr x wd per step)
    Candidate("old-defaults"),
    Candidate("dropout-0.3", config=DROPOUT_03),
    Candidate("lr-3e-4", learning_rate=3e-4),
    Candidate("epochs-20", epochs=20),
    Candidate("wd-1", weight_decay=1.0),
    Candidate("lr-3e-3", learning_rate=3e-3),
    Candidate("epochs-80", epochs=80),
    Candidate("balanced", balanced=True),
    Candidate("balanced-wd-1", balanced=True, weight_decay=1.0),
]
RULES = ("f1", "loss", "last")  # every training is scored under each selection rule (same run, other epoch)
CANDIDATES = [Candidate(**{**t.__dict__, "name": f"{t.name} / select {rule}", "select": rule})
              for t in TRAININGS for rule in RULES]


def load(path: Path) -> dict:
    data = torch.load(path, weights_only=False)
    data["name"] = data["provenance"]["set"]
    return data


def head_model(num_labels: int, hidden: int, max_segments: int, config: dict) -> SegmentClassifier:
    encoder = dict(model_type="bert", hidden_size=hidden, num_hidden_layers=1, num_attention_heads=12,
                   intermediate_size=hidden, vocab_size=8)  # the head never reads the encoder
    fields = dict(method="segment", max_segments=max_segments, freeze_encoder=True, num_labels=num_labels,
                  problem_type="single_label_classification")
    return SegmentClassifier(SegmentClassifierConfig(encoder=encoder, **{**fields, **config}))


def batch(vectors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    counts = torch.tensor([len(v) for v in vectors])
    mask = torch.arange(int(counts.max()))[None, :] < counts[:, None]
    out = torch.zeros(len(vectors), int(counts.max()), vectors[0].shape[-1])
    out[mask] = torch.cat(vectors).float()
    return out, mask


def train_head(candidate: Candidate, train: dict, dev: dict, num_labels: int, max_segments: int, seed: int):
    """Per epoch: dev logits (D, L). The schedule of the Trainer: linear warm-up (10%), linear decay."""
    torch.manual_seed(seed)
    model = head_model(num_labels, train["vectors"][0].shape[-1], max_segments, candidate.config)
    parameters = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(parameters, lr=candidate.learning_rate, weight_decay=candidate.weight_decay)
    steps = candidate.epochs * math.ceil(len(train["vectors"]) / candidate.batch_size)
    warmup = math.ceil(0.1 * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / max(1, warmup) if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))
    labels = torch.tensor(train["labels"])
    counts = torch.bincount(labels, minlength=num_labels).clamp(min=1).float()
    class_weights = len(labels) / (num_labels * counts)
    train_x, train_mask = batch(train["vectors"])  # padded once; a batch keeps the columns it needs
    dev_x, dev_mask = batch(dev["vectors"])
    generator = torch.Generator().manual_seed(seed)
    lengths = train_mask.sum(1)
    history = []
    for _ in range(candidate.epochs):
        model.train()
        # as transformers' LengthGroupedSampler on a set smaller than its megabatch (50 batches): shuffled,
        # then sorted by length, longest first; batches of alike lengths pad least
        order = torch.randperm(len(labels), generator=generator)
        order = order[torch.argsort(lengths[order], descending=True, stable=True)]
        for start in range(0, len(order), candidate.batch_size):
            rows = order[start : start + candidate.batch_size]
            width = int(train_mask[rows].sum(1).max())
            x, mask = train_x[rows, :width], train_mask[rows, :width]
            if candidate.balanced:
                logits = model(segment_embeddings=x, segment_mask=mask).logits
                loss = torch.nn.functional.cross_entropy(logits, labels[rows], weight=class_weights)
            else:
                loss = model(segment_embeddings=x, segment_mask=mask, labels=labels[rows]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            history.append(model(segment_embeddings=dev_x, segment_mask=dev_mask).logits.numpy())
    return history


def pick_epoch(history: list[np.ndarray], gold: np.ndarray, rule: str) -> int:
    if rule == "last":
        return len(history) - 1
    if rule == "loss":
        return int(np.argmin([cross_entropy(logits, gold) for logits in history]))
    return int(np.argmax([macro_f1(gold, logits.argmax(1)) for logits in history]))  # first best


def cross_entropy(logits: np.ndarray, gold: np.ndarray) -> float:
    logits = logits - logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return float(-log_probs[np.arange(len(gold)), gold].mean())


def macro_f1(gold, predicted) -> float:
    return float(f1_score(gold, predicted, average="macro", zero_division=0))


def halves(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(size)
    return order[: size // 2], order[size // 2 :]


def honest_scores(history, gold, rule, cuts) -> list[float]:
    """Select on one half of dev, score on the other, both ways, for every cut."""
    scores = []
    for cut in cuts:
        for select, score in (cut, cut[::-1]):
            epoch = pick_epoch([h[select] for h in history], gold[select], rule)
            scores.append(macro_f1(gold[score], history[epoch][score].argmax(1)))
    return scores


def pooled(vectors: list[torch.Tensor]) -> np.ndarray:
    return np.stack([torch.cat([v.float().mean(0), v.float().max(0).values]).numpy() for v in vectors])


def linear_probe_scores(train: dict, dev: dict, cuts) -> list[float]:
    """Logistic regression on [mean; max] of the segment vectors, C chosen on one dev half, scored on the other."""
    scaler = StandardScaler().fit(pooled(train["vectors"]))
    x, dev_x = scaler.transform(pooled(train["vectors"])), scaler.transform(pooled(dev["vectors"]))
    gold = np.array(dev["labels"])
    predictions = {c: LogisticRegression(C=c, max_iter=2000).fit(x, train["labels"]).predict(dev_x)
                   for c in (0.01, 0.1, 1.0, 10.0)}
    scores = []
    for cut in cuts:
        for select, score in (cut, cut[::-1]):
            best = max(predictions, key=lambda c: macro_f1(gold[select], predictions[c][select]))
            scores.append(macro_f1(gold[score], predictions[best][score]))
    return scores


def subsample(split: dict, fraction: float, seed: int) -> dict:
    """A stratified `fraction` of a split (at least 2 documents per class)."""
    rng = np.random.default_rng(seed)
    labels = np.array(split["labels"])
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        keep += list(rng.permutation(rows)[: max(2, round(fraction * len(rows)))])
    keep.sort()
    return {"vectors": [split["vectors"][i] for i in keep], "labels": [split["labels"][i] for i in keep]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("vectors", nargs="+", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1])
    parser.add_argument("--cuts", type=int, default=3, help="random dev halvings per seed")
    parser.add_argument("--small-fraction", type=float, default=0.5)
    parser.add_argument("--variants", nargs="+", choices=("full", "half"), default=["full", "half"],
                        help="the whole training split and/or a stratified half of it")
    parser.add_argument("--candidates", nargs="*", help="names of TRAININGS (default all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen = [t for t in TRAININGS if not args.candidates or t.name in args.candidates]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}  # variant -> candidate -> scores
    provenance = {}
    for path in args.vectors:
        data = load(path)
        provenance[data["name"]] = data["provenance"]
        variants = ((data["name"], 1.0), (f"{data['name']} (half train)", args.small_fraction))
        for variant, fraction in [v for v in variants if v[1] == 1.0 and "full" in args.variants
                                  or v[1] != 1.0 and "half" in args.variants]:
            gold = np.array(data["dev"]["labels"])
            cuts = [halves(len(gold), 1000 + k) for k in range(args.cuts)]
            train = data["train"] if fraction == 1.0 else subsample(data["train"], fraction, 7)
            results[variant] = {"linear-probe (reference)": linear_probe_scores(train, data["dev"], cuts)}
            for training in chosen:
                start = time.perf_counter()
                histories = [train_head(training, train, data["dev"], len(data["labels"]), data["max_segments"], seed)
                             for seed in args.seeds]
                for rule in RULES:
                    scores = [x for history in histories for x in honest_scores(history, gold, rule, cuts)]
                    results[variant][f"{training.name} / select {rule}"] = scores
                    print(json.dumps({"set": variant, "candidate": f"{training.name} / select {rule}",
                                      "mean": round(statistics.mean(scores), 4),
                                      "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    write_report(results, provenance, args)


def write_report(results: dict, provenance: dict, args) -> None:
    names = [c for c in next(iter(results.values())) if c != "linear-probe (reference)"]
    means = {v: {c: statistics.mean(s) for c, s in r.items()} for v, r in results.items()}
    ranks = {v: {c: 1 + sum(means[v][o] > means[v][c] for o in names) for c in names} for v in results}
    mean_rank = {c: statistics.mean(ranks[v][c] for v in results) for c in names}
    order = sorted(names, key=lambda c: (mean_rank[c], -statistics.mean(means[v][c] for v in results)))
    variants = list(results)
    lines = ["| candidate | mean rank | " + " | ".join(variants) + " |", "|---" * (len(variants) + 2) + "|"]
    for c in order + ["linear-probe (reference)"]:
        rank = f"{mean_rank[c]:.2f}" if c in mean_rank else "-"
        lines.append(f"| {c} | {rank} | " + " | ".join(f"{means[v][c]:.3f}" for v in variants) + " |")
    table = "\n".join(lines)
    print(table)
    candidates = {c.name: c.__dict__ for c in CANDIDATES}
    (args.out / "frozen_defaults.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "provenance": provenance, "seeds": args.seeds, "cuts": args.cuts,
         "candidates": candidates, "scores": results, "mean_rank": mean_rank, "order": order}, indent=1, default=str))
    (args.out / "frozen_defaults.md").write_text(
        "Dev macro-F1 of each candidate, selected on one random half of dev and scored on the other "
        f"(both ways, {args.cuts} cuts x seeds {args.seeds}), and its mean rank over the sets.\n\n" + table + "\n")


if __name__ == "__main__":
    main()
