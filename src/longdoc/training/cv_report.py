"""What a cross-validation reports: every metric's mean, standard deviation and 95% confidence
interval over folds, with the per-fold values, as JSON (cv.json), a Markdown table (cv.md) and a
plot (cv.png: each fold's value and the mean with its interval, one panel per metric).

The interval is Student's t over the K fold scores: mean ± t(0.975, K-1) · std / √K, std with
K-1 degrees of freedom. The folds share training documents, so the scores are not independent and
the interval is narrower than the true uncertainty: read it as a spread, not a guarantee.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

NOT_AGGREGATED = ("documents",)  # counts, not scores
SPEED = ("seconds", "documents_per_second", "tokens_per_second")  # in the table, not the plot


def t_quantile(degrees: int, level: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, degrees))


def aggregate(values: list[float]) -> dict:
    """mean, std (K-1) and the 95% interval of one metric's fold values."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    half = t_quantile(len(values) - 1) * std / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "values": values}


def summarize(results: list[dict], info: dict) -> dict:
    """The summary of the per-fold results: info, then each metric scored in every fold, then the folds."""
    names = [name for name in results[0]["test"] if name not in NOT_AGGREGATED
             and all(isinstance(r["test"].get(name), (int, float)) for r in results)]
    metrics = {name: aggregate([float(r["test"][name]) for r in results]) for name in names}
    return {**info, "metrics": metrics, "per_fold": results}


def write_reports(output: Path, summary: dict) -> dict:
    """cv.json, cv.md and cv.png in `output`; their paths are added to the summary under "files"."""
    files = {"json": output / "cv.json", "table": output / "cv.md", "plot": output / "cv.png",
             "folds": output / "folds.json"}
    summary["files"] = {k: str(v) for k, v in files.items()}
    files["table"].write_text(markdown(summary), encoding="utf-8")
    plot(summary, files["plot"])
    files["json"].write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def markdown(summary: dict) -> str:
    folds = summary["per_fold"]
    head = ["metric", "mean", "std", "95% CI", *[f"fold {r['fold']}" for r in folds]]
    lines = [f"# Cross-validation: {summary['task']}, {summary['family']} on {summary['model']}", "",
             f"- data: {summary['data']} ({summary['folds']} folds, {summary['method']}"
             + (f" by {summary['group_column']!r}" if summary.get("group_column") else "")
             + f", seed {summary['seed']}, inner dev share {summary['dev_share']})",
             f"- documents per fold (train/dev/test): "
             + "; ".join(f"{r['fold']}: {r['documents']['train']}/{r['documents']['dev']}/{r['documents']['test']}"
                         for r in folds), ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, stats in summary["metrics"].items():
        low, high = stats["ci95"]
        cells = [name, f"{stats['mean']:.4g}", f"{stats['std']:.3g}", f"[{low:.4g}, {high:.4g}]",
                 *[f"{v:.4g}" for v in stats["values"]]]
        lines.append("| " + " | ".join(cells) + " |")
    cache = summary.get("vector_cache")
    if cache:
        lines += ["", f"- documents whose segment vectors each fold encoded (cache misses): {cache['encoded_documents_per_fold']}"
                  + (f"; {cache['note']}" if cache["note"] else "")]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in summary["metrics"] if n not in SPEED] or list(summary["metrics"])
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        stats = summary["metrics"][name]
        low, high = stats["ci95"]
        axis.scatter(range(1, len(stats["values"]) + 1), stats["values"], color="tab:blue", label="fold")
        axis.axhline(stats["mean"], color="tab:red", label="mean")
        axis.axhspan(low, high, color="tab:red", alpha=0.15, label="95% CI")
        axis.set_title(name)
        axis.set_xlabel("fold")
        axis.set_xticks(range(1, len(stats["values"]) + 1))
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize="small")
    figure.suptitle(f"{summary['folds']}-fold cross-validation: {summary['task']}, {summary['family']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
