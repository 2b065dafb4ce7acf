"""A hyper-parameter search (`longdoc search`, Optuna) against the defaults, on one real set.

    .venv/bin/python benchmarks/bench_search.py                        # postgres-docs, 30 trials, frozen encoder
    .venv/bin/python benchmarks/bench_search.py --set man-sections --trials 10

Steps: `longdoc search --freeze-encoder` on the set's train and dev splits (MiniLM-L6 encoder; the
first trial encodes the segments into the vector cache, later trials read it; trial 0 is the
defaults, whose model the search keeps beside the best); then both models scored on the test split,
which nothing was chosen by, from the same vector cache (bench_kernel_docs.py's cached evaluation:
the vectors `longdoc evaluate` would compute). Results: benchmarks/results/search/ (search.md,
search.json, the search's trials.md, history.png, importances.png); the study and the models stay
under its models/ folder (not committed), so running the same command again resumes the search
(`--timeout` stops starting trials; a later run with the same --trials runs the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_kernel_docs import minilm_path  # noqa: E402
from harness import code_version, machine_description, reproduce_command  # noqa: E402
from sets import SETS, load_set, provenance_line  # noqa: E402


def longdoc(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "longdoc.cli", *arguments]


def run(command: list[str], log: Path, env: dict) -> tuple[str, float]:
    """Run `command` (stderr into `log`), fail loudly; (stdout, wall seconds)."""
    print("$ " + shlex.join(command), flush=True)
    start = time.perf_counter()
    with open(log, "w") as err:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(command)}\n{log.read_text()[-3000:]}")
    return done.stdout, seconds


def last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="postgres-docs", choices=SETS)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-segments", type=int, default=32, help="segments of 254 tokens read per document")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache-dir", help="segment-vector cache (default: longdoc's)")
    parser.add_argument("--timeout", type=float, help="longdoc search --timeout: start no trial after S seconds")
    parser.add_argument("--seeds", type=int, nargs="*", default=[], metavar="S",
                        help="also train the defaults and the best trial's values with these seeds and score each on "
                        "test (how much of the difference is the seed's)")
    parser.add_argument("--train-child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the commands (default: torch's own); 1 is "
                        "several times faster for these small models on a CPU other jobs keep busy")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "search")
    args = parser.parse_args()
    if args.train_child:
        return train_child(json.loads(args.train_child))
    command = reproduce_command()
    print(f"reproduce: {command}", flush=True)
    paths, provenance = load_set(args.set)
    print(f"set: {provenance_line(provenance)}", flush=True)
    work = args.out / "models"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = datetime.now(timezone.utc)
    common = ["--model", str(minilm_path()), "--train", str(paths["train"]), "--validation", str(paths["dev"]),
              "--freeze-encoder", "--max-segments", str(args.max_segments), "--seed", str(args.seed),
              *(["--cache-dir", args.cache_dir] if args.cache_dir else [])]

    search_cmd = longdoc("search", *common, "--output", str(work / "search"), "--trials", str(args.trials),
                         *(["--timeout", f"{args.timeout:g}"] if args.timeout else []))
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    stdout, search_s = run(search_cmd, logs / "search.log", env)
    summary = last_json(stdout)
    if not summary.get("defaults_model"):
        raise SystemExit("the search kept no defaults model (its defaults trial did not complete)")
    tests = {}
    for name, model_dir in (("defaults", summary["defaults_model"]), ("best", summary["model"])):
        spec = {"model": model_dir, "test": str(paths["test"]), "cache_dir": args.cache_dir}
        stdout, _ = run([sys.executable, str(HERE / "bench_kernel_docs.py"), "--cached-eval-child", json.dumps(spec)],
                        logs / f"{name}-test.log", env)
        tests[name] = last_json(stdout)
    seeds = {}
    for seed in args.seeds:  # the same values, another seed: a model of each, scored on test like the kept ones
        for name, params in (("defaults", summary["defaults_params"]), ("best", summary["best_params"])):
            model_dir = work / f"seed-{seed}-{name}"
            spec = {"train": str(paths["train"]), "dev": str(paths["dev"]), "output": str(model_dir),
                    "model": str(minilm_path()), "seed": seed, "params": params, "max_segments": args.max_segments,
                    "cache_dir": args.cache_dir}
            stdout, _ = run([sys.executable, str(Path(__file__).resolve()), "--train-child", json.dumps(spec)],
                            logs / f"seed-{seed}-{name}-train.log", env)
            dev = last_json(stdout)["dev"][summary["metric"]]
            spec = {"model": str(model_dir), "test": str(paths["test"]), "cache_dir": args.cache_dir}
            stdout, _ = run([sys.executable, str(HERE / "bench_kernel_docs.py"), "--cached-eval-child",
                             json.dumps(spec)], logs / f"seed-{seed}-{name}-test.log", env)
            test = last_json(stdout)
            seeds.setdefault(name, []).append({"seed": seed, "dev": dev, "test_macro_f1": test["macro_f1"],
                                               "test_accuracy": test["accuracy"]})
    load_after = os.getloadavg()

    search_json = json.loads((work / "search" / "search.json").read_text())
    trials = search_json["trials"]
    seconds = sorted(t["seconds"] for t in trials if t["seconds"] is not None and t["state"] == "COMPLETE")
    all_seconds = sum(t["seconds"] or 0 for t in trials)  # one process ran them one after another
    metric = summary["metric"]
    rows = {
        "defaults": {"dev": summary["defaults_value"], "trial": 0, "test": tests["defaults"],
                     "params": summary["defaults_params"]},
        "best": {"dev": summary["best_value"], "trial": summary["best_trial"], "test": tests["best"],
                 "params": summary["best_params"]},
    }
    result = {
        "date": started.isoformat(timespec="seconds"), "command": command, "code": code_version(),
        "machine": machine_description("cpu"), "load_average": {"before": load_before, "after": load_after},
        "set": provenance, "encoder": str(minilm_path()), "max_segments": args.max_segments, "seed": args.seed,
        "threads": args.threads, "timeout": args.timeout, "versions": versions(),
        "commands": {"search": shlex.join(search_cmd)},
        "search": {k: v for k, v in summary.items() if k not in ("plots",)}, "search_wall_s": round(search_s, 1),
        "trials_seconds_total": round(all_seconds), "trial_seconds": {"median": seconds[len(seconds) // 2] if seconds else None,
                          "min": seconds[0] if seconds else None, "max": seconds[-1] if seconds else None},
        "rows": rows, "seeds": seeds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(result, indent=1, default=str))
    for name in ("trials.md", "history.png", "importances.png"):
        if (work / "search" / name).is_file():
            shutil.copy(work / "search" / name, args.out / name)
    (args.out / "search.md").write_text(markdown(result, metric))
    print((args.out / "search.md").read_text(), flush=True)
    return 0


def markdown(result: dict, metric: str) -> str:
    search, rows = result["search"], result["rows"]
    states = ", ".join(f"{n} {s.lower()}" for s, n in search["states"].items())
    lines = [
        f"# Hyper-parameter search against the defaults: {result['set']['set']}, segment family, frozen encoder", "",
        "Reproduce:", "", "```", result["command"], "```", "",
        f"- date: {result['date']}; code {result['code']}",
        f"- machine: {result['machine'].split(', torch threads')[0]}, commands run with "
        f"{'OMP_NUM_THREADS=' + str(result['threads']) if result['threads'] else 'torch default threads'}, "
        f"{result['versions']}; load average (1, 5, 15 min) before {fmt_load(result['load_average']['before'])}"
        f", after {fmt_load(result['load_average']['after'])} (a shared 2-core machine: seconds are upper bounds)",
        f"- set: {provenance_line(result['set'])}",
        f"- encoder: all-MiniLM-L6-v2 ({result['encoder']}), frozen; at most {result['max_segments']} segments of 254 "
        f"tokens per document; seed {result['seed']} for every trial",
        f"- search: `{result['commands']['search']}`",
        f"- trials: {search['trials_done']} finished ({states}), {result['trials_seconds_total']} s of training in "
        f"all (this run's `longdoc search` took {result['search_wall_s']:.0f} s: a resumed search runs only the "
        f"missing trials); complete trials took "
        f"{result['trial_seconds']['min']:.0f} to {result['trial_seconds']['max']:.0f} s, median "
        f"{result['trial_seconds']['median']:.0f} s",
        "- chosen by dev macro-F1 only; the test split was scored once per model, after the search, from the "
        "segment-vector cache (the vectors `longdoc evaluate` computes)", "",
        "| model | dev macro-F1 | test macro-F1 | test accuracy | hyper-parameters |", "|---|---|---|---|---|",
    ]
    for name, row in (("defaults (trial 0)", rows["defaults"]), (f"best (trial {rows['best']['trial']})", rows["best"])):
        params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in (row["params"] or {}).items())
        lines.append(f"| {name} | {row['dev']:.4f} | {row['test']['macro_f1']:.4f} | {row['test']['accuracy']:.4f} | "
                     f"{params} |")
    if result["seeds"]:
        lines += ["", "The same values trained with other seeds (the search's models are seed "
                      f"{result['seed']}), each scored on test:", "",
                  "| model | seed | dev macro-F1 | test macro-F1 | test accuracy |", "|---|---|---|---|---|"]
        for name in ("defaults", "best"):
            rows_of = [{"seed": result["seed"], "dev": rows[name]["dev"], "test_macro_f1": rows[name]["test"]["macro_f1"],
                        "test_accuracy": rows[name]["test"]["accuracy"]}] + result["seeds"][name]
            for row in rows_of:
                lines.append(f"| {name} | {row['seed']} | {row['dev']:.4f} | {row['test_macro_f1']:.4f} | "
                             f"{row['test_accuracy']:.4f} |")
            mean = lambda key: sum(r[key] for r in rows_of) / len(rows_of)  # noqa: E731
            lines.append(f"| {name} | mean of {len(rows_of)} | {mean('dev'):.4f} | {mean('test_macro_f1'):.4f} | "
                         f"{mean('test_accuracy'):.4f} |")
    lines += ["", "Plots: history.png (dev score per trial, best so far), importances.png (fANOVA parameter "
                  "importances); every trial: trials.md.", ""]
    return "\n".join(lines)


def train_child(spec: dict) -> int:
    """One frozen segment-classifier training with a search's values (config fields among them), in Python:
    `longdoc train` has no flags for the model's config fields."""
    from longdoc.training import train
    from longdoc.training.search_space import SearchSpace

    train_values, loop_values, config = SearchSpace({}, {}).split(spec["params"])
    result = train("classification", spec["train"], spec["dev"], spec["output"], model=spec["model"], family="segment",
                   seed=spec["seed"], freeze_encoder=True, max_segments=spec["max_segments"],
                   cache_dir=spec["cache_dir"], checkpoints=False, config_overrides=config or None,
                   **train_values, **loop_values)
    print(json.dumps({"dev": result.dev_metrics}), flush=True)
    return 0


def versions() -> str:
    import optuna
    import torch
    import transformers

    return f"torch {torch.__version__}, transformers {transformers.__version__}, optuna {optuna.__version__}"


def fmt_load(load) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    raise SystemExit(main())
