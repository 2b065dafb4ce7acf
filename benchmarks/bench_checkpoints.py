"""What resumable checkpoints cost: the default `longdoc train` of the frozen segment classifier
(all-MiniLM-L6-v2, 40 epochs of the head, checkpoints spaced a minute apart) with checkpoints and without,
interleaved, on one real set whose segment vectors are cached first (so both time training only).

    .venv/bin/python benchmarks/bench_checkpoints.py [--set postgres-docs] [--rounds 2]

Writes results/checkpoints/checkpoints.{md,json} with the machine, the load and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_kernel_docs import minilm_path  # noqa: E402
from harness import RESULTS_DIR, code_version, machine_description, reproduce_command  # noqa: E402
from sets import load_set, provenance_line  # noqa: E402


def train_once(paths: dict, cache: Path, checkpoints: bool) -> tuple[float, int]:
    from longdoc.training import train

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train("classification", paths["train"], paths["dev"], Path(out) / "model", model=str(minilm_path()),
                       family="segment", freeze_encoder=True, cache_dir=cache, checkpoints=checkpoints)
        return time.perf_counter() - start, len(result.history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="postgres-docs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "longdoc-bench-checkpoints")
    args = parser.parse_args()
    paths, provenance = load_set(args.set)
    load_before = os.getloadavg()
    train_once(paths, args.cache_dir, checkpoints=False)  # fills the vector cache; not timed
    seconds = {"without checkpoints": [], "with checkpoints": []}
    evaluations = None
    for _ in range(args.rounds):
        for name, checkpoints in (("without checkpoints", False), ("with checkpoints", True)):
            elapsed, evaluations = train_once(paths, args.cache_dir, checkpoints)
            seconds[name].append(round(elapsed, 2))
            print(f"{name}: {elapsed:.1f} s", flush=True)
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ratio = medians["with checkpoints"] / medians["without checkpoints"]
    result = {"set": provenance, "rounds": args.rounds, "seconds": seconds, "median": medians,
              "ratio_with_to_without": round(ratio, 4), "evaluations": evaluations,
              "machine": machine_description("cpu"), "threads": os.environ.get("OMP_NUM_THREADS"),
              "load_before": load_before, "load_after": load_after, "code": code_version(),
              "command": reproduce_command()}
    out = RESULTS_DIR / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints.json").write_text(json.dumps(result, indent=1, default=str))
    rows = "\n".join(f"| {name} | {' / '.join(f'{v:.1f}' for v in values)} | {medians[name]:.1f} |"
                     for name, values in seconds.items())
    (out / "checkpoints.md").write_text(
        f"# What resumable checkpoints cost (frozen segment classifier, defaults)\n\n"
        f"Command: `{result['command']}`  \nCode: {result['code']}  \nMachine: {result['machine']}, "
        f"OMP_NUM_THREADS={result['threads']}  \nSet: {provenance_line(provenance)}  \n"
        f"Load average before / after: {' '.join(f'{x:.2f}' for x in load_before)} / "
        f"{' '.join(f'{x:.2f}' for x in load_after)}\n\n"
        f"`longdoc.training.train` of the segment family with --freeze-encoder and nothing else ({evaluations} "
        f"epochs; checkpoints at most once a minute and at the stage's end, the last 2 kept), vector cache filled beforehand.\n\n"
        f"| run | seconds per round | median |\n|---|---|---|\n{rows}\n\n"
        f"With checkpoints / without: **{ratio:.3f}x**.\n")
    print(f"with / without checkpoints: {ratio:.3f}x")


if __name__ == "__main__":
    main()
