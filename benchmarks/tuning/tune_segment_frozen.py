"""Dev-split search for the frozen segment classifier's defaults (never reads the test split).

Every configuration trains through `longdoc.train_classifier`, the path `longdoc train` takes;
segment vectors come from the frozen-encoder cache (`--cache-dir`), so after the first run only
the layers above the encoder train. Prints one JSON line per run: the best dev macro-F1, its
epoch, and the seconds taken.

    .venv/bin/python benchmarks/tuning/tune_segment_frozen.py --data DIR --cache-dir DIR --encoder DIR
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from transformers.utils import logging

from longdoc import train_classifier

CONFIGS = {
    "default": {},
    "2-layers": dict(config_overrides=dict(aggregator_layers=2)),
    "lr-3e-4": dict(learning_rate=3e-4),
    "lr-3e-3": dict(learning_rate=3e-3),
    "dropout-0.2": dict(config_overrides=dict(aggregator_dropout=0.2, classifier_dropout=0.2)),
    "batch-8": dict(batch_size=8),
    "cls-pooling": dict(pooling="cls"),
    "chunk-510": dict(chunk_size=510),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="folder with train.jsonl and dev.jsonl")
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[42])
    parser.add_argument("--epochs", type=int, help="override the default epochs")
    args = parser.parse_args()
    logging.set_verbosity_error()
    for name in args.configs:
        for seed in args.seeds:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                result = train_classifier(f"{args.data}/train.jsonl", f"{args.data}/dev.jsonl", f"{out}/m",
                                          family="segment", model=args.encoder, freeze_encoder=True, seed=seed,
                                          cache_dir=args.cache_dir, epochs=args.epochs, **CONFIGS[name])
            print("RESULT " + json.dumps({"config": name, "seed": seed, "dev_macro_f1": result.dev_metrics["macro_f1"],
                                          "dev_accuracy": result.dev_metrics["accuracy"],
                                          "best_epoch": result.best_epoch, "epochs": len(result.history),
                                          "seconds": round(time.perf_counter() - start)}), flush=True)


if __name__ == "__main__":
    main()
