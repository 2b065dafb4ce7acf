"""Long-document question answering on the Python FAQ set: the packaged MiniLM fine-tuned as each family,
against a first-512-tokens model trained the same way (and the TF-IDF baseline of qa_tfidf_baseline.py).

    .venv/bin/python benchmarks/bench_python_faq_qa.py --row longformer [--max-length 2048] [--epochs 1]
    .venv/bin/python benchmarks/bench_python_faq_qa.py --row first-512
    .venv/bin/python benchmarks/bench_python_faq_qa.py --report        # the table of every row run so far

Rows (each is `longdoc train --task question-answering` on the packaged MiniLM, then EM/F1 on dev and test):
  longformer, lsg, hat  the MiniLM converted to the family, windows of --max-length tokens (HAT: segments of 128
                        tokens, --max-length / 128 of them) sliding by the default stride over the whole page
  first-512             the same (a 1024-token Longformer), reading only the first 512 tokens of each (question, context) pair: contexts are
                        cut where that window ends, an answer beyond the cut trains as no-answer at CLS (as any
                        window without its answer does), and test answers are scored against the full gold
Training: --negative-windows keeps every window that holds its answer and that share of the others (seeded), so an
epoch over 17k-token pages fits a 2-core CPU; the recipe is otherwise the task's default. Dev picks the saved epoch.
Writes benchmarks/results/python_faq/qa_<row>.json and, with --report, qa.md (the command of every row included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "python_faq"
FIRST_WINDOW = 512
ROWS = ("longformer", "lsg", "hat", "first-512")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else ():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def set_summary(data: Path) -> dict:
    manifest = json.loads((data / "MANIFEST.json").read_text(encoding="utf-8"))
    packages = ", ".join(f"{p['package']} {p['version']}" for p in manifest["source"].get("packages", []))
    return {"packages": packages, "checksum": manifest.get("checksum")}


def truncate_to_first_window(records, tokenizer, out: Path) -> None:
    """JSON lines of `records` whose contexts end where a FIRST_WINDOW-token (question, context) window ends;
    answers beyond the cut are dropped (the question is then unanswerable inside the window)."""
    lines = []
    for r in records:
        enc = tokenizer(r.question, r.context, truncation="only_second", max_length=FIRST_WINDOW,
                        return_offsets_mapping=True)
        end = max(e for (s, e), seq in zip(enc["offset_mapping"], enc.sequence_ids()) if seq == 1)
        kept = [a for a in r.answers if a.start + len(a.text) <= end]
        lines.append(json.dumps({"id": r.id, "question": r.question, "context": r.context[:end],
                                 "answers": {"text": [a.text for a in kept], "answer_start": [a.start for a in kept]}}))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_row(args) -> dict:
    import torch

    from longdoc.assets import packaged_minilm
    from longdoc.data.qa import read_qa
    from longdoc.datasets.python_faq import ensure_python_faq
    from longdoc.metrics.qa import answer_token_start, metrics_by_answer_position, squad_metrics
    from longdoc.pipelines.qa import QuestionAnswerer

    torch.set_num_threads(args.threads)
    data, source = ensure_python_faq(), packaged_minilm()
    work = Path(args.work) / args.row
    work.mkdir(parents=True, exist_ok=True)
    files = {split: data / f"{split}.jsonl" for split in ("train", "dev", "test")}
    # first-512: a Longformer must be longer than its 512-token source, so it is built for 1024 tokens; its contexts
    # are cut to the first 512-token window, so it never reads more than that one window
    family, length = ("longformer", 2 * FIRST_WINDOW) if args.row == "first-512" else (args.row, args.max_length)
    if args.row == "first-512":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        for split in files:
            truncated = work / f"{split}.jsonl"
            truncate_to_first_window(read_qa(files[split]), tokenizer, truncated)
            files[split] = truncated
    model_dir = work / "model"
    command = [sys.executable, "-m", "longdoc.cli", "train", "--task", "question-answering", "--family", family,
               "--model", str(source), "--train", str(files["train"]), "--validation", str(files["dev"]),
               "--output", str(model_dir), "--max-length", str(length), "--epochs", str(args.epochs),
               "--negative-windows", str(args.negative_windows), "--seed", str(args.seed)]
    if args.learning_rate:
        command += ["--learning-rate", str(args.learning_rate)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.time()
    if args.trained:  # a folder this very command trained before (its log beside it): evaluate only
        model_dir = Path(args.trained)
    else:
        with open(work / "train.log", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    train_seconds = None if args.trained else time.time() - start
    qa = QuestionAnswerer.from_pretrained(model_dir, device="cpu")
    scores = {}
    for split in ("dev", "test"):
        gold = read_qa(data / f"{split}.jsonl")  # the full contexts and answers, whatever the row read
        read = read_qa(files[split])
        started = time.time()
        answers = qa.answer([r.question for r in read], [r.context for r in read], max_length=length,
                            handle_impossible_answer=False)
        predictions = {r.id: a[0]["answer"] for r, a in zip(read, answers)}
        metrics = squad_metrics(predictions, gold)
        starts = {r.id: answer_token_start(qa.tokenizer, r) for r in gold if r.answerable}
        scores[split] = {"exact_match": metrics["exact_match"], "f1": metrics["f1"], "questions": len(gold),
                         "by_answer_start": metrics_by_answer_position(predictions, gold, starts),
                         "seconds": time.time() - started}
    saved = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    row = {"row": args.row, "family": family, "max_length": length, "epochs": args.epochs,
           "learning_rate": args.learning_rate,
           "negative_windows": args.negative_windows, "seed": args.seed, "threads": args.threads,
           "train_seconds": train_seconds, "settings": saved.get("question_answering"), "scores": scores,
           "train_command": shlex.join(["longdoc", *command[3:]]),
           "reproduce": "cd " + str(ROOT) + " && " + shlex.join([".venv/bin/python", *sys.argv]),
           "set": set_summary(data), "cpu": cpu_model(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    name = f"qa_{args.row}_{length}_{args.epochs}ep_lr{args.learning_rate or 'default'}.json"
    (OUT / name).write_text(json.dumps(row, indent=1), encoding="utf-8")
    return row


def report() -> str:
    rows = sorted((json.loads(path.read_text()) for path in OUT.glob("qa_*.json")),
                  key=lambda r: (ROWS.index(r["row"]), r["max_length"], r["epochs"]))
    lines = ["# python-faq: long-document question answering", "",
             "Each row: the packaged all-MiniLM-L6-v2 fine-tuned with `longdoc train --task question-answering`, "
             "then SQuAD EM / F1 (0-100) on dev and test (always a span: no-answer is not allowed at test). "
             "Reproduce each row with its command; `--report` rebuilds this page.", ""]
    if rows:
        lines += [f"- set: {rows[0]['set']['packages']}, checksum {rows[0]['set']['checksum']}",
                  f"- machine: {rows[0]['cpu']} (Zen 4, AVX512-BF16, no AMX), 2 cores, {rows[0]['threads']} thread per run, "
                  "bf16 autocast in training (the CPU has bf16); two runs at a time, so train seconds are slow", ""]
    lines += ["| row | family | window | epochs | learning rate | negatives kept | dev EM | dev F1 | test EM | test F1 "
              "| train s |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        d, t = r["scores"]["dev"], r["scores"]["test"]
        trained = f"{r['train_seconds']:.0f}" if r["train_seconds"] else "-"
        lines.append(f"| {r['row']} | {r['family']} | {r['max_length']} | {r['epochs']} | "
                     f"{r.get('learning_rate') or '3e-05 (default)'} | {r['negative_windows']} | "
                     f"{d['exact_match']:.1f} | {d['f1']:.1f} | {t['exact_match']:.1f} | {t['f1']:.1f} | {trained} |")
    tfidf = OUT / "tfidf.json"
    if tfidf.exists():  # qa_tfidf_baseline.py's rows, no training
        for method, splits in json.loads(tfidf.read_text())["methods"].items():
            d, t = splits["dev"]["overall"], splits["test"]["overall"]
            lines.append(f"| {method} (qa_tfidf_baseline.py) | - | - | - | - | - | {d['exact_match']:.1f} | "
                         f"{d['f1']:.1f} | {t['exact_match']:.1f} | {t['f1']:.1f} | - |")
    lines += ["", "Test by the MiniLM token where the answer starts (EM / F1, questions):", "",
              "| row | <512 | 512-2048 | 2048-4096 | >=4096 |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        cells = [f"{b['exact_match']:.1f} / {b['f1']:.1f} ({b['count']})" if b["count"] else "- (0)"
                 for b in r["scores"]["test"]["by_answer_start"].values()]
        lines.append(f"| {r['row']} ({r['max_length']}, {r['epochs']} ep) | " + " | ".join(cells) + " |")
    lines += ["", "TF-IDF paragraph retrieval by answer position: tfidf.md.", "", "Commands:", ""]
    lines += [f"- {r['row']}: `{r['reproduce']}` (trains with `{r['train_command']}`)" for r in rows]
    text = "\n".join(lines) + "\n"
    (OUT / "qa.md").write_text(text, encoding="utf-8")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", choices=ROWS)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--negative-windows", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="/tmp/python-faq-qa")
    parser.add_argument("--trained", metavar="DIR", help="evaluate the model that this row's training command wrote "
                        "to DIR before, instead of training again")
    args = parser.parse_args()
    if args.row:
        row = run_row(args)
        print(json.dumps({k: row[k] for k in ("row", "scores", "train_seconds")}, indent=1))
    if args.report or not args.row:
        print(report())


if __name__ == "__main__":
    main()
