"""Does combining the frozen label-attention head with the linear probe beat either alone? Dev splits only.

Same cached vectors, head training (old defaults, epoch of the lowest dev loss) and honest protocol as
`tune_frozen_defaults.py`: every choice (head epoch, probe C, combination) is made on one random half of
dev and scored on the other, both ways, over several cuts. Choices are made by dev LOG-LOSS (macro-F1 on
35 documents is too coarse to choose between near ties). Candidates:

  head              the head alone (the current default)
  probe             logistic regression on standardized [mean; max], C chosen on the selection half
  average-0.5       mean of the head's and the probe's probabilities
  choose            head, probe or average-0.5, whichever has the lowest log-loss on the selection half
  weight-by-dev     probe weight w in {0, .25, .5, .75, 1} of lowest log-loss on the selection half

    .venv/bin/python benchmarks/tuning/tune_probe_combination.py /tmp/w4/vec/*.pt --out /tmp/w4/combo.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from tune_frozen_defaults import (  # noqa: E402
    Candidate, halves, load, macro_f1, pick_epoch, pooled, subsample, train_head)

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
PROBE_C = (0.01, 0.1, 1.0, 10.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def log_loss(probs: np.ndarray, gold: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(gold)), gold], 1e-12, None)).mean())


def probe_probabilities(train: dict, dev: dict) -> dict[float, np.ndarray]:
    scaler = StandardScaler().fit(pooled(train["vectors"]))
    x, dev_x = scaler.transform(pooled(train["vectors"])), scaler.transform(pooled(dev["vectors"]))
    return {c: LogisticRegression(C=c, max_iter=2000).fit(x, train["labels"]).predict_proba(dev_x) for c in PROBE_C}


def scores_for(history: list[np.ndarray], probe: dict, gold: np.ndarray, cuts) -> dict[str, list[float]]:
    out = {name: [] for name in ("head", "probe", "average-0.5", "choose", "weight-by-dev")}
    for cut in cuts:
        for select, score in (cut, cut[::-1]):
            head = softmax(history[pick_epoch([h[select] for h in history], gold[select], "loss")])
            best_c = min(probe, key=lambda c: log_loss(probe[c][select], gold[select]))
            mixes = {w: (1 - w) * head + w * probe[best_c] for w in WEIGHTS}
            loss = {w: log_loss(mixes[w][select], gold[select]) for w in WEIGHTS}
            chosen = {"head": 0.0, "probe": 1.0, "average-0.5": 0.5,
                      "choose": min((0.0, 0.5, 1.0), key=loss.get), "weight-by-dev": min(WEIGHTS, key=loss.get)}
            for name, w in chosen.items():
                out[name].append(macro_f1(gold[score], mixes[w][score].argmax(1)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("vectors", nargs="+", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--cuts", type=int, default=3)
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for path in args.vectors:
        data = load(path)
        gold = np.array(data["dev"]["labels"])
        cuts = [halves(len(gold), 1000 + k) for k in range(args.cuts)]
        for fraction in args.fractions:
            variant = data["name"] if fraction == 1.0 else f"{data['name']} ({fraction:g} train)"
            train = data["train"] if fraction == 1.0 else subsample(data["train"], fraction, 7)
            start = time.perf_counter()
            probe = probe_probabilities(train, data["dev"])
            scores = {}
            for seed in args.seeds:
                history = train_head(Candidate("old-defaults"), train, data["dev"], len(data["labels"]),
                                     data["max_segments"], seed)
                for name, s in scores_for(history, probe, gold, cuts).items():
                    scores.setdefault(name, []).extend(s)
            results[variant] = scores
            print(json.dumps({"set": variant, "seconds": round(time.perf_counter() - start, 1),
                              **{n: round(statistics.mean(s), 4) for n, s in scores.items()}}), flush=True)
    write_table(results)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "seeds": args.seeds, "cuts": args.cuts,
                                    "scores": results}, indent=1))


def write_table(results: dict) -> None:
    names = list(next(iter(results.values())))
    means = {v: {n: statistics.mean(s) for n, s in r.items()} for v, r in results.items()}
    ranks = {v: {n: 1 + sum(means[v][o] > means[v][n] for o in names) for n in names} for v in results}
    mean_rank = {n: statistics.mean(ranks[v][n] for v in results) for n in names}
    print("| candidate | mean rank | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 2) + "|")
    for n in sorted(names, key=mean_rank.get):
        print(f"| {n} | {mean_rank[n]:.2f} | " + " | ".join(f"{means[v][n]:.3f}" for v in results) + " |")


if __name__ == "__main__":
    main()
