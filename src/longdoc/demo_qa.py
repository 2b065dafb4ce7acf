"""`python -m longdoc.demo_qa` (`make demo-qa`): answer questions over long pages on a CPU, end to end.

1. build the Python FAQ question-answering set (python3.11-doc, fetched into a cache folder);
2. fine-tune the packaged all-MiniLM-L6-v2, converted into a 1024-token Longformer, on its training
   questions (windows over each whole page; 3 epochs; every window that holds its answer and 5% of
   the others), keeping the best dev F1 -- about 25 minutes on two cores; skipped when `--output`
   already holds the model;
3. score it on the test split (SQuAD EM / F1, by where the answer starts);
4. ask one test question of its whole FAQ page and show the answer with its character offsets.

The classification demo (`make demo`) is the ten-minute one; this one is separate because training a
reader over 17k-token pages takes longer than that on two cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

STEPS = 4
# the recipe of the python-faq longformer row (benchmarks/bench_python_faq_qa.py): windows of 1024 tokens over the
# whole page, every window that holds its answer and 5% of the others, 3 epochs at 1e-4
MAX_LENGTH, NEGATIVE_WINDOWS, EPOCHS, LEARNING_RATE = 1024, 0.05, 3, 1e-4


def step(number: int, text: str) -> None:
    print(f"\n[{number}/{STEPS}] {text}", flush=True)


def run(out: Path, cache_dir: Path | None) -> None:
    from longdoc import QuestionAnswerer
    from longdoc.assets import packaged_minilm
    from longdoc.data.qa import read_qa
    from longdoc.datasets.python_faq import ensure_python_faq, summary
    from longdoc.logs import show_progress
    from longdoc.training import train

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the steps say what happens
    show_progress()
    step(1, "the Python FAQ question-answering set (python3.11-doc)")
    data = ensure_python_faq(cache_dir=cache_dir)
    print(summary(data))
    model_dir = out / "model"
    step(2, f"fine-tune all-MiniLM-L6-v2 as a {MAX_LENGTH}-token Longformer reader ({EPOCHS} epochs)")
    if (model_dir / "config.json").is_file():
        print(f"{model_dir} holds a trained reader: kept (delete it to train again)")
    else:
        started = time.perf_counter()
        result = train("question-answering", data / "train.jsonl", data / "dev.jsonl", model_dir,
                       model=str(packaged_minilm()), family="longformer", epochs=EPOCHS, learning_rate=LEARNING_RATE,
                       max_length=MAX_LENGTH,
                       negative_windows=NEGATIVE_WINDOWS)
        print(f"saved ({result.best_when()}) in {time.perf_counter() - started:.0f} s: dev EM "
              f"{result.dev_metrics['exact_match']:.1f}, F1 {result.dev_metrics['f1']:.1f}")
    reader = QuestionAnswerer.from_pretrained(model_dir, device="cpu")
    step(3, "test split: SQuAD exact match and F1")
    metrics = reader.evaluate(data / "test.jsonl", progress=False)
    print(f"test EM {metrics['exact_match']:.1f}, F1 {metrics['f1']:.1f} over {metrics['total']} questions")
    for bucket, scores in metrics.get("by_answer_position", {}).items():
        if scores["count"]:
            print(f"  answers starting at token {bucket:>9}: EM {scores['exact_match']:5.1f}, F1 {scores['f1']:5.1f} "
                  f"({scores['count']} questions)")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    step(4, "one question over its whole page")
    record = max(read_qa(data / "test.jsonl"), key=lambda r: r.answers[0].start if r.answers else -1)
    page = out / "page.txt"
    page.write_text(record.context, encoding="utf-8")
    answer = reader(question=record.question, context=record.context)
    print(f"page: {page} ({len(record.context)} characters); question: {record.question}")
    print(json.dumps({"answer": answer["answer"], "score": round(answer["score"], 4), "start": answer["start"],
                      "end": answer["end"]}, ensure_ascii=False))
    print(f"gold answer at characters {record.answers[0].start}-{record.answers[0].start + len(record.answers[0].text)}"
          f": {record.answers[0].text[:160]}")
    print(f"\nthe same from the command line: longdoc answer {model_dir} {page} --question {json.dumps(record.question)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo-qa-output", help="folder for the model and results")
    parser.add_argument("--cache-dir", type=Path, help="where the Debian package and the set are kept")
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    run(out, args.cache_dir)


if __name__ == "__main__":
    main()
