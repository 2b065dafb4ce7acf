"""ONNX export against PyTorch on CPU: onnxruntime (fp32, int8) vs PyTorch (fp32, bf16 autocast).

Speed and memory: a Longformer converted from the packaged all-MiniLM-L6-v2 (6 layers, hidden 384,
16384 tokens, window 512; a classification head with random weights), exported with
`longdoc.export.export_onnx` (fp32 and int8, checked against PyTorch at 2 to 16384 tokens). One
document (batch 1, global attention on the first token) at 1k / 4k / 16k tokens, each runtime
called through what its pipeline calls (the PyTorch model; the ONNX stand-in on onnxruntime's
CPU provider), the same number of threads for both. Seconds: median over the rounds (A B C D D C B
A after a full-size warm-up, harness.time_interleaved); peak memory: the RSS growth of one call over
the loaded model, in a fresh process per runtime and length (harness.probe_memory_in_subprocesses).

int8 accuracy: the demo's classifier on kernel-docs (frozen MiniLM segment classifier, at most 8
segments of 254 tokens, trained here unless --work holds it), exported fp32 + int8; test accuracy
and macro-F1 of the four runtimes, and the int8 - fp32 deltas.

  .venv/bin/python benchmarks/bench_export.py                       # everything, ~10 minutes on 2 cores
  .venv/bin/python benchmarks/bench_export.py --lengths 1024 --skip-accuracy   # a smoke test
Results: benchmarks/results/export/export.{md,csv} and accuracy.csv.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import torch

import harness

RUNTIMES = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")
DEFAULT_LENGTHS = (1024, 4096, 16384)


def table(rows: list[dict], keys) -> str:
    """A plain-text table of `keys` of the rows, numbers to 3 significant digits."""
    shown = [{key: f"{row.get(key):.3g}" if isinstance(row.get(key), float) else str(row.get(key, "")) for key in keys}
             for row in rows]
    return harness.format_columns(shown, [(key, key) for key in keys])


def build_longformer(work: Path) -> tuple[Path, Path]:
    """(the PyTorch model folder, its export folder), made once in `work`."""
    import longdoc.assets
    from longdoc.convert import convert
    from longdoc.export import export_onnx
    from longdoc.families import get_family

    model_dir, onnx_dir = work / "longformer-16k", work / "longformer-16k-onnx"
    if not model_dir.is_dir():
        encoder = work / "longformer-16k-encoder"
        print(convert(longdoc.assets.packaged_minilm(), encoder, to="longformer", max_length=16384, window=512))
        torch.manual_seed(0)
        model, tokenizer = get_family("longformer").build("classification", str(encoder), {
            "head_config": {"num_labels": 25}})
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    if not (onnx_dir / "longdoc_export.json").is_file():
        start = time.perf_counter()
        print(export_onnx(model_dir, onnx_dir, quantize="int8"))
        print(f"export: {time.perf_counter() - start:.0f} s (tracing, quantization, checks)", flush=True)
    return model_dir, onnx_dir


def runner(runtime: str, model_dir: Path, onnx_dir: Path, threads: int):
    """A function (input_ids, attention_mask) -> logits for one runtime, as its pipeline calls it."""
    from longdoc.export import load_onnx_pipeline
    from longdoc.families import get_family

    if runtime.startswith("onnx"):
        model = load_onnx_pipeline(onnx_dir, precision=runtime.split("-")[1], threads=threads).model
        return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits
    model = get_family("longformer").load(str(model_dir)).eval()
    bf16 = runtime == "torch-bf16"

    @torch.inference_mode()
    def run(ids, mask):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(input_ids=ids, attention_mask=mask).logits

    return run


def document(tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(1000, 29000, (1, tokens), generator=torch.Generator().manual_seed(tokens))
    ids[0, 0], ids[0, -1] = 101, 102
    return ids, torch.ones_like(ids)


def run_memory_probe(spec: dict) -> None:
    torch.set_num_threads(spec["threads"])
    run = runner(spec["runtime"], Path(spec["model_dir"]), Path(spec["onnx_dir"]), spec["threads"])
    ids, mask = document(spec["tokens"])
    harness.report_memory_probe(harness.measure_peak_memory(lambda: run(ids, mask)))


def speed(model_dir: Path, onnx_dir: Path, lengths, rounds: int, threads: int) -> list[dict]:
    runners = {runtime: runner(runtime, model_dir, onnx_dir, threads) for runtime in RUNTIMES}
    rows = []
    for tokens in lengths:
        ids, mask = document(tokens)
        samples = {}
        with harness.InterferenceMonitor() as monitor:
            medians, done = harness.time_interleaved({r: (lambda f=f: f(ids, mask)) for r, f in runners.items()},
                                                     rounds if tokens < 16384 else max(1, rounds - 1),
                                                     samples_out=samples)
        disturbed = harness.disturbed_reasons(samples, monitor.result)
        for runtime in RUNTIMES:
            rows.append({"tokens": tokens, "runtime": runtime, "seconds": medians[runtime],
                         "min_s": min(samples[runtime]), "max_s": max(samples[runtime]), "rounds": done,
                         "tokens_per_s": tokens / medians[runtime], "load": monitor.result.describe(),
                         "disturbed": "; ".join(disturbed)})
        print(table(rows[-len(RUNTIMES):], ("tokens", "runtime", "seconds", "tokens_per_s")),
              flush=True)
    specs = [{"runtime": row["runtime"], "tokens": row["tokens"], "model_dir": str(model_dir),
              "onnx_dir": str(onnx_dir), "threads": threads} for row in rows]
    for row, result in zip(rows, harness.probe_memory_in_subprocesses(__file__, specs, jobs=1)):
        row["peak_mib"] = result["peak_bytes"] / harness.MIB
        row["memory_method"] = result["method"]
    return rows


def accuracy(work: Path) -> list[dict]:
    """Test accuracy / macro-F1 of the demo's classifier on kernel-docs, four runtimes."""
    import longdoc.assets
    from longdoc import DocumentClassifier, train_classifier
    from longdoc.data.documents import read_documents
    from longdoc.datasets.kernel_docs import ensure_kernel_docs
    from longdoc.export import export_onnx, load_onnx_pipeline
    from longdoc.metrics.classification import classification_metrics, probabilities

    data = ensure_kernel_docs()
    model_dir, onnx_dir = work / "kernel-docs-segment", work / "kernel-docs-segment-onnx"
    if not (model_dir / "config.json").is_file():
        train_classifier(data.paths["train"], data.paths["dev"], model_dir, family="segment",
                         model=str(longdoc.assets.packaged_minilm()), freeze_encoder=True, max_segments=8)
    if not (onnx_dir / "longdoc_export.json").is_file():
        print(export_onnx(model_dir, onnx_dir, quantize="int8"), flush=True)
    documents = read_documents(data.paths["test"], "text", "label")
    texts = [d.text for d in documents]
    pipelines = {"torch-fp32": (DocumentClassifier.from_pretrained(model_dir), False),
                 "torch-bf16": (DocumentClassifier.from_pretrained(model_dir), True),
                 "onnx-fp32": (load_onnx_pipeline(onnx_dir, precision="fp32"), None),
                 "onnx-int8": (load_onnx_pipeline(onnx_dir, precision="int8"), None)}
    rows = []
    for runtime, (pipeline, bf16) in pipelines.items():
        gold = [pipeline.space.encode(d) for d in documents]
        start = time.perf_counter()
        logits = pipeline.predict_logits(texts, bf16=bf16).logits
        seconds = time.perf_counter() - start
        metrics = classification_metrics(gold, probabilities(logits, pipeline.space.multi_label), pipeline.space,
                                         pipeline.threshold)
        rows.append({"runtime": runtime, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                     "seconds": seconds, "documents": len(texts), "data": f"kernel-docs {data.checksum[:12]}"})
        print(table(rows[-1:], ("runtime", "accuracy", "macro_f1", "seconds")), flush=True)
    reference = {key: rows[0][key] for key in ("accuracy", "macro_f1")}
    for row in rows:
        row.update({f"{key}_delta_vs_torch_fp32": row[key] - value for key, value in reference.items()})
    return rows


def write(out: Path, command: str, speed_rows: list[dict], accuracy_rows: list[dict], threads: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    context = {"machine": harness.machine_description("cpu"), "threads": f"{threads} (torch and onnxruntime)",
               "code": harness.code_version(), "date": time.strftime("%Y-%m-%d")}
    lines = harness.markdown_head("ONNX export: onnxruntime vs PyTorch (CPU)", command, context)
    if speed_rows:
        harness.write_csv(speed_rows, out / "export.csv")
        lines += ["", "Longformer (MiniLM, 6 layers, window 512), batch 1: median seconds per document, peak RSS "
                  "growth of one call.", "", "```",
                  table(speed_rows, ("tokens", "runtime", "seconds", "min_s", "max_s", "tokens_per_s",
                                                      "peak_mib", "load", "disturbed")), "```"]
    if accuracy_rows:
        harness.write_csv(accuracy_rows, out / "accuracy.csv")
        lines += ["", "kernel-docs test split, the demo's frozen segment classifier:", "", "```",
                  table(accuracy_rows, ("runtime", "accuracy", "macro_f1",
                                                         "accuracy_delta_vs_torch_fp32", "macro_f1_delta_vs_torch_fp32",
                                                         "seconds")), "```"]
    (out / "export.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(DEFAULT_LENGTHS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", type=Path, default=Path("/tmp/longdoc-bench-export"),
                        help="where the models and exports are kept between runs")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "export")
    parser.add_argument(harness.MEMORY_PROBE_FLAG, dest="memory_probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    command = harness.setup_run(args, run_memory_probe)
    if command is None:
        return
    from longdoc.logs import show_progress
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    show_progress()
    args.work.mkdir(parents=True, exist_ok=True)
    speed_rows = accuracy_rows = []
    if not args.skip_speed:
        model_dir, onnx_dir = build_longformer(args.work)
        speed_rows = speed(model_dir, onnx_dir, args.lengths, args.rounds, args.threads)
    if not args.skip_accuracy:
        accuracy_rows = accuracy(args.work)
    write(args.out, command, speed_rows, accuracy_rows, args.threads)
    print(f"results: {args.out}/export.md")


if __name__ == "__main__":
    main()
