"""The HTTP service under load: `longdoc serve` (its own process) with the packaged all-MiniLM-L6-v2 segment
classifier, sent the test documents of a real set by 1, 8 and 32 concurrent clients (serve/loadtest.py).
Per level: throughput, p50/p95/p99 latency, requests per forward pass (from /metrics) and whether any answer
differs from the one-client run; beside it, the pipeline called directly on the same documents (what
`longdoc predict` does), the cost of the service without HTTP.

    .venv/bin/python benchmarks/bench_serve.py [--set postgres-docs] [--requests 64] [--max-words 1500]

The classifier's head is untrained (random, seeded): a trained head costs the same. Writes
results/serve/serve_<max batch tokens>.{csv,md,json} with the machine (CPU kind), the load and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import RESULTS_DIR, code_version, machine_description, reproduce_command, write_csv  # noqa: E402
from sets import load_set, provenance_line  # noqa: E402

LEVELS = (1, 8, 32)


def build_classifier(folder: Path, labels: list[str]) -> Path:
    import torch

    from longdoc.assets import packaged_minilm
    from longdoc.data.labels import LabelSpace
    from longdoc.families import get_family

    torch.manual_seed(0)
    model, tokenizer = get_family("segment").build("classification", str(packaged_minilm()),
                                                   {"head_config": LabelSpace(tuple(labels), False).config_fields()})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def read_texts(path: Path, count: int, max_words: int) -> tuple[list[str], list[str]]:
    """The first `count` documents of a JSONL split (each cut to `max_words` words) and the set's labels."""
    texts, labels = [], set()
    with path.open() as handle:
        for line in handle:
            record = json.loads(line)
            labels.update(record["label"] if isinstance(record["label"], list) else [record["label"]])
            if len(texts) < count:
                texts.append(" ".join(record["text"].split()[:max_words]))
    return texts, sorted(labels)


def start_service(model_dir: Path, max_batch_tokens: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "longdoc.cli", "serve", f"minilm={model_dir}", "--port", "0",
                                "--max-batch-tokens", str(max_batch_tokens), "--timeout", "600",
                                "--max-concurrent-requests", "256"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"longdoc serve did not start: {line!r}")
    return process, line.split()[4]


def direct_seconds(model_dir: Path, texts: list[str]) -> float:
    """Seconds of DocumentClassifier.predict on all the texts at once (after a warm-up)."""
    from longdoc.pipelines import DocumentClassifier

    classifier = DocumentClassifier.from_pretrained(model_dir)
    classifier.predict(texts[:2])
    start = time.perf_counter()
    classifier.predict(texts)
    return time.perf_counter() - start


def level_row(clients: int, samples: list[dict], tokens: int) -> dict:
    """Medians over a level's runs, with the spread of its throughput."""
    middle = {key: statistics.median(s[key] for s in samples)
              for key in ("seconds", "p50_ms", "p95_ms", "p99_ms", "batch")}
    rates = sorted(s["requests"] / s["seconds"] for s in samples)
    return {"clients": clients, "runs": len(samples), "requests": samples[0]["requests"],
            "requests_per_second": round(samples[0]["requests"] / middle["seconds"], 2),
            "requests_per_second_min_max": f"{rates[0]:.2f}-{rates[-1]:.2f}",
            "tokens_per_second": round(tokens / middle["seconds"]), "p50_ms": round(middle["p50_ms"], 1),
            "p95_ms": round(middle["p95_ms"], 1), "p99_ms": round(middle["p99_ms"], 1),
            "requests_per_batch": round(middle["batch"], 2),
            "answers_differing_from_1_client": sum(s["differing"] for s in samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="postgres-docs")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-words", type=int, default=1500, help="documents cut to this many words")
    parser.add_argument("--max-batch-tokens", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the levels, each in A B C C B A order")
    args = parser.parse_args()
    import httpx
    from transformers import AutoTokenizer

    from longdoc.serve.loadtest import batch_counts, run_load, same_answers

    paths, provenance = load_set(args.set)
    texts, labels = read_texts(paths["test"], args.requests, args.max_words)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        model_dir = build_classifier(Path(work) / "minilm", labels)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
        direct = direct_seconds(model_dir, texts)
        print(f"pipeline directly: {len(texts)} documents ({tokens} tokens) in {direct:.1f} s", flush=True)
        process, url = start_service(model_dir, args.max_batch_tokens)
        try:
            calls = [("/v1/models/minilm/classify", {"text": t}) for t in texts]
            run_load(url, calls[:2], 1)  # warm-up
            runs: dict[int, list[dict]] = {clients: [] for clients in LEVELS}
            sequential = None
            for _ in range(args.rounds):  # levels in A B C C B A order: drift and other jobs hit every level alike
                for clients in LEVELS + LEVELS[::-1]:
                    before = batch_counts(httpx.get(url + "/metrics").text)["minilm"]
                    result = run_load(url, calls, clients)
                    after = batch_counts(httpx.get(url + "/metrics").text)["minilm"]
                    sequential = sequential or result
                    differing = sum(not same_answers(a, b) for a, b in zip(result.answers, sequential.answers))
                    runs[clients].append({**result.summary(), "batch": (after[1] - before[1]) / (after[0] - before[0]),
                                          "differing": differing})
                    print(clients, runs[clients][-1], flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
    rows = [level_row(clients, samples, tokens) for clients, samples in runs.items()]
    load_after = os.getloadavg()
    context = {"machine": machine_description("cpu"), "set": provenance_line(provenance),
               "documents": f"{len(texts)} test documents cut to {args.max_words} words, {tokens} tokens in all",
               "model": "all-MiniLM-L6-v2 segment classifier (packaged; head untrained, seeded)",
               "service": f"longdoc serve, its own process, --max-batch-tokens {args.max_batch_tokens}",
               "pipeline directly": f"{direct:.2f} s for all documents ({len(texts) / direct:.2f} documents/s, "
                                    f"{tokens / direct:.0f} tokens/s)",
               "load average before / after": f"{load_before[0]:.2f} / {load_after[0]:.2f}",
               "code": code_version(), "command": reproduce_command()}
    out, stem = RESULTS_DIR / "serve", f"serve_{args.max_batch_tokens}"
    out.mkdir(parents=True, exist_ok=True)
    write_csv([{**row, "max_batch_tokens": args.max_batch_tokens, "machine": context["machine"]} for row in rows],
              out / f"{stem}.csv")
    (out / f"{stem}.json").write_text(json.dumps({"context": context, "rows": rows}, indent=1))
    columns = list(rows[0])
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    table += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    (out / f"{stem}.md").write_text("\n".join(
        ["# The service under load (bench_serve.py)", "", *[f"- {k}: {v}" for k, v in context.items()], "",
         "Each level sends the same documents; a client sends its next request when its last is answered. Levels "
         f"run {args.rounds} rounds in A B C C B A order; figures are medians over a level's runs (throughput: "
         "min-max too). Answers are compared with the first one-client run (labels equal, scores within 1e-5).",
         "", *table, ""]))
    print(f"wrote {out / stem}.md")


if __name__ == "__main__":
    main()
