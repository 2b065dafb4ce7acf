"""TF-IDF paragraph retrieval on the Python FAQ question-answering set: the floor a QA model must beat.

    .venv/bin/python benchmarks/qa_tfidf_baseline.py [--set DIR] [--out benchmarks/results/python_faq]

Each context is cut into its paragraphs exactly as the builder joined them
(``longdoc.datasets.python_faq.context_paragraphs``); the answer predicted for a question is the
paragraph whose TF-IDF vector is closest (cosine) to the question's, ties to the first. The
vectoriser (scikit-learn defaults: lower case, word tokens, smoothed idf, l2 rows) is fitted on
the paragraphs of the train contexts only. A second row, the first paragraph that is not a heading
(the longest-standing lead baseline), shows the floor without any retrieval.

Scores are SQuAD EM / F1 (``longdoc.metrics.qa``) on dev and test, split by the MiniLM token where
the answer starts in its context. Writes ``tfidf.md`` and ``tfidf.json`` with the command, the
set's package version and checksum, and the set's statistics in MiniLM tokens.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from longdoc.data.qa import QARecord, read_qa
from longdoc.datasets.python_faq import MANIFEST, SPLITS, context_paragraphs, ensure_python_faq
from longdoc.metrics.qa import answer_token_start, metrics_by_answer_position, squad_metrics

ROOT = Path(__file__).resolve().parents[1]
LONG_ANSWER_TOKEN = 512  # the share of answers starting at or beyond it is what a 512-token model cannot see


def paragraphs(context: str) -> list[str]:
    return [context[start:end] for start, end in context_paragraphs(context)]


def fit_tfidf(train: list[QARecord]) -> TfidfVectorizer:
    contexts = sorted({r.context for r in train})  # a page's context is shared by its questions: once each
    return TfidfVectorizer().fit([p for context in contexts for p in paragraphs(context)])


def tfidf_predictions(vectorizer: TfidfVectorizer, records: list[QARecord]) -> dict[str, str]:
    predictions = {}
    for record in records:
        candidates = paragraphs(record.context)
        similarity = (vectorizer.transform(candidates) @ vectorizer.transform([record.question]).T).toarray()[:, 0]
        predictions[record.id] = candidates[int(np.argmax(similarity))]  # argmax: the first of equals
    return predictions


def first_paragraph_predictions(records: list[QARecord]) -> dict[str, str]:
    """The first paragraph of at least 8 words (the page title and section headings are shorter)."""
    return {r.id: next((p for p in paragraphs(r.context) if len(p.split()) >= 8), r.context) for r in records}


def set_statistics(records: dict[str, list[QARecord]], tokenizer) -> tuple[dict, dict[str, int]]:
    lengths = {}  # context -> MiniLM tokens (each page once)
    starts = {}
    for record in (r for split in SPLITS for r in records[split]):
        if record.context not in lengths:
            lengths[record.context] = len(tokenizer(record.context, add_special_tokens=False, verbose=False)["input_ids"])
        starts[record.id] = answer_token_start(tokenizer, record)
    every = [r for split in SPLITS for r in records[split]]
    per_question = [lengths[r.context] for r in every]
    stats = {
        "questions": {split: len(records[split]) for split in SPLITS},
        "pages": len(lengths),
        "median_context_tokens_per_question": statistics.median(per_question),
        "median_context_tokens_per_page": statistics.median(lengths.values()),
        "median_context_tokens_by_split": {split: statistics.median(lengths[r.context] for r in records[split])
                                           for split in SPLITS},
        "max_context_tokens": max(lengths.values()),
        "share_answers_from_token_512": {
            split: sum(starts[r.id] >= LONG_ANSWER_TOKEN for r in records[split]) / len(records[split])
            for split in SPLITS},
        "share_answers_from_token_512_all": sum(starts[r.id] >= LONG_ANSWER_TOKEN for r in every) / len(every),
        "median_answer_start_token": statistics.median(starts.values()),
    }
    return stats, starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, help="a built python-faq folder (default: build or reuse in the cache)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "python_faq")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    from longdoc.assets import packaged_minilm

    folder = args.set or ensure_python_faq()
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    records = {split: read_qa(folder / f"{split}.jsonl") for split in SPLITS}
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
    stats, starts = set_statistics(records, tokenizer)

    began = time.perf_counter()
    methods = {}
    vectorizer = fit_tfidf(records["train"])
    for name, predict in (("tfidf-paragraph", lambda rs: tfidf_predictions(vectorizer, rs)),
                          ("first-paragraph", first_paragraph_predictions)):
        methods[name] = {}
        for split in ("dev", "test"):
            predictions = predict(records[split])
            methods[name][split] = {
                "overall": squad_metrics(predictions, records[split]),
                "by_answer_token": metrics_by_answer_position(predictions, records[split], starts),
            }
    seconds = time.perf_counter() - began

    command = " ".join(["cd", str(ROOT), "&&", ".venv/bin/python", "benchmarks/qa_tfidf_baseline.py",
                        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    packages = manifest["source"].get("packages", [])
    result = {"command": command, "set": {"name": manifest["name"], "packages": packages,
                                          "checksum": manifest["checksum"], "pages": manifest["pages"],
                                          "counts": manifest["counts"]},
              "statistics": stats, "methods": methods, "seconds": round(seconds, 2)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tfidf.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (args.out / "tfidf.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    s = result["set"]
    stats = result["statistics"]
    versions = ", ".join(f"{p['package']} {p['version']} (.deb sha256 {p['deb_sha256']})" for p in s["packages"])
    pages = {split: ", ".join(sorted(p for p, x in s["pages"].items() if x == split)) for split in SPLITS}
    lines = [
        "# python-faq: TF-IDF paragraph retrieval baseline",
        "",
        "Reproduce:",
        "",
        "```",
        result["command"],
        "```",
        "",
        f"- set: python-faq from {versions}, checksum {s['checksum']}",
        "- questions: " + ", ".join(f"{split} {s['counts'][split]} ({pages[split]})" for split in SPLITS),
        f"- contexts (whole FAQ pages, MiniLM WordPiece tokens): median {stats['median_context_tokens_per_question']:g} "
        f"per question (" + ", ".join(f"{split} {stats['median_context_tokens_by_split'][split]:g}" for split in SPLITS)
        + f"), {stats['median_context_tokens_per_page']:g} per page, longest {stats['max_context_tokens']}",
        f"- answers starting at MiniLM token 512 or later: {100 * stats['share_answers_from_token_512_all']:.1f}% "
        "(" + ", ".join(f"{split} {100 * stats['share_answers_from_token_512'][split]:.1f}%" for split in SPLITS)
        + f"); median answer start token {stats['median_answer_start_token']:g}",
        "- tfidf-paragraph: the context paragraph closest to the question by TF-IDF cosine (fitted on the train "
        "contexts' paragraphs); first-paragraph: the first paragraph of at least 8 words",
        f"- time: {result['seconds']} s for both methods on dev and test",
        "",
        "| method | split | EM | F1 | questions |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for method, splits in result["methods"].items():
        for split, scores in splits.items():
            overall = scores["overall"]
            lines.append(f"| {method} | {split} | {overall['exact_match']:.1f} | {overall['f1']:.1f} | "
                         f"{overall['total']} |")
    buckets = list(result["methods"]["tfidf-paragraph"]["dev"]["by_answer_token"])
    lines += ["", "By the MiniLM token where the answer starts in its context (EM / F1, questions):", "",
              "| method | split | " + " | ".join(buckets) + " |", "| --- | --- |" + " ---: |" * len(buckets)]
    for method, splits in result["methods"].items():
        for split, scores in splits.items():
            cells = [f"{b['exact_match']:.1f} / {b['f1']:.1f} ({b['count']})" if b["count"] else "- (0)"
                     for b in scores["by_answer_token"].values()]
            lines.append(f"| {method} | {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
