"""Multi-process training speed on this machine: `longdoc train` as 1 process of batch 2B against
`--nproc-per-node 2` of batch B each (DDP over gloo), the same documents per optimizer step.

    .venv/bin/python benchmarks/bench_distributed.py            # kernel-docs subset, MiniLM, 2 rounds
    .venv/bin/python benchmarks/bench_distributed.py --rounds 3 --documents 96 --max-length 256

Fine-tunes the packaged all-MiniLM-L6-v2 (`--family truncate`, the first --max-length tokens, no
head warm-up, 1 epoch) on the first --documents training documents of kernel-docs (dev: 16 later
training documents of the same labels). Each variant runs as its own `longdoc train` command,
variants interleaved round by round (and one process on one thread, to tell
how the single process scales over its threads); the wall time of the command (start-up included) and the
seconds `train()` reports (model building, training, dev evaluation) are recorded with the load
average before and after each run: other jobs on a shared machine show there. A third variant
turns DDP's search for unused parameters off (it is always on in longdoc; this family has none) to
price it. Writes results/distributed/distributed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_kernel_docs import minilm_path  # noqa: E402
from harness import code_version, cpu_info, machine_description, reproduce_command  # noqa: E402
from sets import load_set, provenance_line  # noqa: E402

WITHOUT_FIND_UNUSED = "--as-cli-without-find-unused"  # this script as a torchrun worker: longdoc train, patched


def cli_without_find_unused(argv: list[str]) -> int:
    """`longdoc train argv` with ddp_find_unused_parameters False (what the third variant prices)."""
    import importlib

    train_module = importlib.import_module("longdoc.training.train")
    original = train_module.trainer_arguments

    def patched(*args, **kwargs):
        return {**original(*args, **kwargs), "ddp_find_unused_parameters": False}

    train_module.trainer_arguments = patched
    from longdoc.cli import main

    return main(argv)


def subset(paths: dict[str, Path], documents: int, folder: Path) -> dict[str, Path]:
    """The first `documents` training documents, and 16 later ones of their labels as dev (texts cut
    to 4000 characters: the family reads the first --max-length tokens only)."""
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines() if line.strip()]
    train = rows[:documents]
    labels = {row["label"] for row in train}
    dev = [row for row in rows[documents:] if row["label"] in labels][:16]
    out = {}
    for split, chosen in (("train", train), ("dev", dev)):
        out[split] = folder / f"{split}.jsonl"
        out[split].write_text("".join(json.dumps({**row, "text": row["text"][:4000]}) + "\n" for row in chosen))
    return out


def variant_command(name: str, data: dict[str, Path], output: Path, args) -> tuple[list[str], dict]:
    common = ["train", "--family", "truncate", "--model", str(minilm_path()), "--max-length", str(args.max_length),
              "--no-head-warmup", "--epochs", "1", "--learning-rate", "5e-5", "--train", str(data["train"]),
              "--validation", str(data["dev"]), "--output", str(output)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "LONGDOC_BF16": "0"}
    if name.startswith("1 process"):
        if name == "1 process, 1 thread":  # what each of the two processes has: tells thread scaling from DDP
            environment["OMP_NUM_THREADS"] = "1"
        return [sys.executable, "-m", "longdoc.cli", *common, "--batch-size", str(2 * args.batch_size)], environment
    if name == "2 processes":
        return [sys.executable, "-m", "longdoc.cli", *common, "--batch-size", str(args.batch_size),
                "--nproc-per-node", "2"], environment
    # as the launcher would start it (OMP_NUM_THREADS: the cores shared out), with the patched worker
    environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // 2))
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--master-port=29731",
            str(Path(__file__).resolve()), WITHOUT_FIND_UNUSED, *common, "--batch-size", str(args.batch_size)], environment


def run_variant(name: str, data: dict[str, Path], folder: Path, args) -> dict:
    output = folder / f"model-{name.replace(' ', '-').replace(',', '')}"
    command, environment = variant_command(name, data, output, args)
    load_before = os.getloadavg()
    used_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (used.ru_utime - used_before.ru_utime) + (used.ru_stime - used_before.ru_stime)
    load_after = os.getloadavg()
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
    report = json.loads((output / "training_report.json").read_text())
    return {"variant": name, "wall_seconds": round(wall, 2), "train_seconds": round(report["seconds"], 2),
            "cpu_seconds": round(cpu, 1),  # all its processes, user + system: the work done, whatever the load
            "dev_macro_f1": report["dev_metrics"].get("macro_f1"), "load_before": load_before,
            "load_after": load_after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--documents", type=int, default=64, help="training documents (one epoch)")
    parser.add_argument("--batch-size", type=int, default=4, help="per process; the single process takes twice")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed")
    args = parser.parse_args()
    command = reproduce_command()
    paths, provenance = load_set("kernel-docs")
    variants = ("1 process", "2 processes", "2 processes, find_unused off", "1 process, 1 thread")
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as folder:
        data = subset(paths, args.documents, Path(folder))
        for round_number in range(1, args.rounds + 1):
            for name in variants:
                row = {"round": round_number, **run_variant(name, data, Path(folder), args)}
                print(json.dumps(row), flush=True)
                runs.append(row)
    summary = {}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        summary[name] = {"wall_seconds_median": statistics.median(r["wall_seconds"] for r in mine),
                         "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in mine),
                         "train_seconds_median": statistics.median(r["train_seconds"] for r in mine)}
    single = summary["1 process"]
    for name in variants:
        summary[name]["train_speedup"] = round(single["train_seconds_median"] / summary[name]["train_seconds_median"], 3)
        summary[name]["wall_speedup"] = round(single["wall_seconds_median"] / summary[name]["wall_seconds_median"], 3)
    cpu_name, flags = cpu_info()
    result = {"command": command, "code": code_version(), "machine": machine_description("cpu"), "cpu": cpu_name,
              "cpu_flags": sorted(flags), "cpus": os.cpu_count(), "data": provenance_line(provenance),
              "documents": args.documents, "dev_documents": 16, "per_process_batch": args.batch_size,
              "max_length": args.max_length, "runs": runs, "summary": summary}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distributed.json").write_text(json.dumps(result, indent=1))
    (args.out / "distributed.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [
        "# Multi-process training on this machine's CPU (DDP over gloo)", "",
        f"Command: `{result['command']}`  ", f"Code: {result['code']}  ", f"Machine: {result['machine']}  ",
        f"CPU flags: {' '.join(result['cpu_flags'])}  ",
        f"Data: {result['data']}; the first {result['documents']} training documents, 1 epoch, "
        f"{result['dev_documents']} dev documents; all-MiniLM-L6-v2, `--family truncate --max-length "
        f"{result['max_length']}`, fp32; {2 * result['per_process_batch']} documents per optimizer step in every "
        f"variant", "",
        "| variant | train() s (median) | command wall s (median) | CPU s, all processes (median) | speed-up of "
        "train() | speed-up of wall |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in result["summary"].items():
        lines.append(f"| {name} | {s['train_seconds_median']:.1f} | {s['wall_seconds_median']:.1f} | "
                     f"{s['cpu_seconds_median']:.1f} | "
                     f"{s['train_speedup']:.2f}x | {s['wall_speedup']:.2f}x |")
    lines += ["", "Each run (load average over 1/5/15 minutes before -> after; the machine is shared):", "",
              "| round | variant | train() s | wall s | CPU s | dev macro-F1 | load before | load after |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        load = lambda values: "/".join(f"{v:.1f}" for v in values)  # noqa: E731
        lines.append(f"| {r['round']} | {r['variant']} | {r['train_seconds']:.1f} | {r['wall_seconds']:.1f} | "
                     f"{r['cpu_seconds']:.1f} | "
                     f"{r['dev_macro_f1']:.3f} | {load(r['load_before'])} | {load(r['load_after'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == WITHOUT_FIND_UNUSED:
        sys.exit(cli_without_find_unused(sys.argv[2:]))
    main()
