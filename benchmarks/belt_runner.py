"""belt-nlp 1.1.0 on a short encoder (all-MiniLM-L6-v2 by default), one subprocess per step.

`bench_kernel_docs.py` runs it so that belt-nlp's training and prediction get their own process
(peak RSS per step) and the same documents as `longdoc`:

  python benchmarks/belt_runner.py train --model SRC --train train.jsonl --dev dev.jsonl --output DIR \
      [--kind pooling|truncated] [--epochs 2] [--batch-size 4] [--learning-rate 5e-5] \
      [--max-text-length 2048] [--chunk-size 510] [--stride 510] [--minimal-chunk-length 63] [--pooling mean]
  python benchmarks/belt_runner.py evaluate --model-dir DIR test.jsonl          # a model `train` saved
  python benchmarks/belt_runner.py evaluate --model SRC --labels N test.jsonl   # fresh head: speed only

Each command prints ONE JSON object as its last stdout line.

What had to be worked around in belt-nlp 1.1.0 (the rest is belt-nlp's own code, unchanged):
  * `BertNN` hard-codes `Linear(768, num_labels)`; MiniLM's hidden size is 384, so the network is
    `HiddenSizeBertNN`: BertNN's forward, its head sized from the encoder's config.
  * `BertBase.load` reads the pickled module with `torch.load(path)`: since torch 2.6 that means
    `weights_only=True`, which refuses a pickled nn.Module. The runner saves and loads a state dict.
  * `fit` has no dev set, scheduler or warm-up: it trains `epochs` epochs with plain AdamW (one
    learning rate for encoder and head); the dev scores are of the last epoch.
  * chunks are padded to 512 tokens whatever their length, and [CLS]/[SEP]/[PAD] are the
    hard-coded ids 101/102/0 (MiniLM's, being BERT uncased: checked at start-up).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.nn import Linear
from transformers import AutoModel, AutoTokenizer

from belt_nlp.bert import BertNN
from belt_nlp.bert_classifier_truncated import BertClassifierTruncated
from belt_nlp.bert_classifier_with_pooling import BertClassifierWithPooling
from belt_nlp.splitting import transform_list_of_texts

NETWORK = "network.pt"
PARAMS = "belt.json"
BELT_IDS = {"cls_token_id": 101, "sep_token_id": 102, "pad_token_id": 0}


class HiddenSizeBertNN(BertNN):
    """belt-nlp's BertNN (same forward: [CLS] vector -> linear) with a head that fits the encoder."""

    def __init__(self, model, num_labels: int):
        super().__init__(model=model, num_labels=num_labels)
        self.linear = Linear(model.config.hidden_size, num_labels)


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check_special_ids(tokenizer) -> None:
    actual = {name: getattr(tokenizer, name) for name in BELT_IDS}
    if actual != BELT_IDS:
        raise SystemExit(f"belt-nlp hard-codes {BELT_IDS}; this tokenizer has {actual}")


def build(params: dict, source: str, tokenizer, state_dict=None):
    """A belt-nlp classifier on `source`'s encoder; `params` as saved in belt.json."""
    torch.manual_seed(params["seed"])
    network = HiddenSizeBertNN(AutoModel.from_pretrained(source), params["num_labels"])
    if state_dict is not None:
        network.load_state_dict(state_dict)
    common = dict(num_labels=params["num_labels"], batch_size=params["batch_size"],
                  learning_rate=params["learning_rate"], epochs=params["epochs"], tokenizer=tokenizer,
                  neural_network=network, pretrained_model_name_or_path=None, device="cpu")
    if params["kind"] == "truncated":
        return BertClassifierTruncated(**common)
    return BertClassifierWithPooling(
        **common, chunk_size=params["chunk_size"], stride=params["stride"],
        minimal_chunk_length=params["minimal_chunk_length"], pooling_strategy=params["pooling"],
        maximal_text_length=params["max_text_length"],
    )


def tokens_read(classifier, params: dict, texts: list[str]) -> int:
    """Document tokens the classifier reads (no [CLS]/[SEP], no padding), from belt-nlp's own splitting."""
    if params["kind"] == "truncated":
        lengths = classifier.tokenizer(texts, max_length=512, truncation=True)["input_ids"]
        return sum(len(ids) - 2 for ids in lengths)
    encoded = transform_list_of_texts(texts, classifier.tokenizer, params["chunk_size"], params["stride"],
                                      params["minimal_chunk_length"], params["max_text_length"])
    return sum(int(mask.sum()) - 2 * len(mask) for mask in encoded["attention_mask"])


def scores(classifier, texts, gold, batch_size) -> dict:
    start = time.perf_counter()
    probs = classifier.predict_scores(texts, batch_size=batch_size)
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "documents": len(texts), "documents_per_second": len(texts) / seconds}
    if gold is not None:
        from sklearn.metrics import accuracy_score, f1_score

        predicted = probs.argmax(dim=1).numpy()
        out.update(accuracy=float(accuracy_score(gold, predicted)),
                   macro_f1=float(f1_score(gold, predicted, average="macro", labels=list(range(probs.shape[1])),
                                           zero_division=0)))  # over every training label, as longdoc
    return out


def run_train(args) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    check_special_ids(tokenizer)
    train, dev = read_jsonl(args.train), read_jsonl(args.dev)
    labels = sorted({d["label"] for d in train})
    index = {label: i for i, label in enumerate(labels)}
    params = dict(kind=args.kind, num_labels=len(labels), labels=labels, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, epochs=args.epochs, chunk_size=args.chunk_size, stride=args.stride,
                  minimal_chunk_length=args.minimal_chunk_length, pooling=args.pooling,
                  max_text_length=args.max_text_length, seed=args.seed, source=str(args.model))
    classifier = build(params, args.model, tokenizer)
    texts, targets = [d["text"] for d in train], [index[d["label"]] for d in train]
    print(f"belt-nlp {args.kind}: {len(train)} documents, {len(labels)} labels, {args.epochs} epochs", flush=True)
    torch.manual_seed(args.seed)  # RandomSampler draws from the global generator
    start = time.perf_counter()
    classifier.fit(texts, targets)
    fit_seconds = time.perf_counter() - start
    print(f"fit: {fit_seconds:.0f} s", flush=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    torch.save(classifier.neural_network.state_dict(), output / NETWORK)
    (output / PARAMS).write_text(json.dumps(params, indent=1))
    dev_gold = [index.get(d["label"], -1) for d in dev]
    dev_scores = scores(classifier, [d["text"] for d in dev], dev_gold, args.predict_batch_size)
    return {"fit_seconds": fit_seconds, "dev": dev_scores, "params": params,
            "train_tokens_read": tokens_read(classifier, params, texts)}


def run_evaluate(args) -> dict:
    if args.model_dir:
        params = json.loads((Path(args.model_dir) / PARAMS).read_text())
        state = torch.load(Path(args.model_dir) / NETWORK, map_location="cpu", weights_only=True)
        source = params["source"]
    else:  # speed only: the pretrained encoder under a fresh head (weights do not change the time)
        params = dict(kind=args.kind, num_labels=args.labels, labels=None, batch_size=args.predict_batch_size,
                      learning_rate=0.0, epochs=0, chunk_size=args.chunk_size, stride=args.stride,
                      minimal_chunk_length=args.minimal_chunk_length, pooling=args.pooling,
                      max_text_length=args.max_text_length or None, seed=args.seed, source=str(args.model))
        state, source = None, args.model
    if args.model_dir and args.max_text_length is not None:  # read more (0: all) or less than trained on
        params["max_text_length"] = args.max_text_length or None
    tokenizer = AutoTokenizer.from_pretrained(source)
    check_special_ids(tokenizer)
    classifier = build(params, source, tokenizer, state)
    documents = read_jsonl(args.data)
    texts = [d["text"] for d in documents]
    gold = None
    if params.get("labels"):
        index = {label: i for i, label in enumerate(params["labels"])}
        gold = [index.get(d["label"], -1) for d in documents]
    result = scores(classifier, texts, gold, args.predict_batch_size)
    result["tokens_read"] = tokens_read(classifier, params, texts)
    result["tokens_per_second"] = result["tokens_read"] / result["seconds"]
    result["params"] = {k: v for k, v in params.items() if k != "labels"}
    result["torch_threads"] = torch.get_num_threads()
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "evaluate"):
        p = sub.add_parser(name)
        p.add_argument("--model", help="encoder checkpoint folder")
        p.add_argument("--kind", choices=["pooling", "truncated"], default="pooling")
        p.add_argument("--chunk-size", type=int, default=510)
        p.add_argument("--stride", type=int, default=510)
        p.add_argument("--minimal-chunk-length", type=int, default=63, help="default 510 // 8, as longdoc's min_tail")
        p.add_argument("--pooling", choices=["mean", "max"], default="mean")
        p.add_argument("--max-text-length", type=int,
                       help="tokens kept per document (default: all; evaluate --model-dir: as trained, 0: all)")
        p.add_argument("--predict-batch-size", type=int, default=4, help="documents per prediction batch")
        p.add_argument("--seed", type=int, default=42)
    train = sub.choices["train"]
    train.add_argument("--train", required=True)
    train.add_argument("--dev", required=True)
    train.add_argument("--output", required=True)
    train.add_argument("--epochs", type=int, default=2)
    train.add_argument("--batch-size", type=int, default=4, help="documents per training step")
    train.add_argument("--learning-rate", type=float, default=5e-5)
    evaluate = sub.choices["evaluate"]
    evaluate.add_argument("data", help="documents (.jsonl)")
    evaluate.add_argument("--model-dir", help="a folder `train` wrote")
    evaluate.add_argument("--labels", type=int, help="with --model: number of labels of the fresh head")
    args = parser.parse_args(argv)
    if args.command == "evaluate" and not args.model_dir and not (args.model and args.labels):
        parser.error("evaluate needs --model-dir, or --model with --labels")
    if args.command == "train" and not args.model:
        parser.error("train needs --model")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run_train(args) if args.command == "train" else run_evaluate(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
