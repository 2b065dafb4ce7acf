"""The report of a hyper-parameter search (training/search.py), written into its output folder:

- trials.md: the best trial against the defaults trial, then a table of every trial (number, state,
  dev score, seconds, best epoch, parameters);
- search.json: the same as data (the summary `longdoc search` prints, and every trial);
- history.png: each trial's dev score in order with the best so far (pruned trials at their last
  reported score); importances.png: Optuna's parameter importances (fANOVA) of the complete trials.

Files are written whole and renamed in: processes sharing a study each write the report at their end,
and the last one's holds every trial.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .save_best import write_whole


def write_report(study, output: Path, storage: str, metric: str, direction: str, described: dict,
                 defaults_note: str | None, kept: dict | None, seconds: float) -> dict:
    """Write the report of `study` into `output`; returns the summary. `storage`: the URL to show (no
    password); `kept`: the record of the trial whose model is in `output`/model (None: no model)."""
    trials = [trial_row(t) for t in study.trials]
    finished = [t for t in trials if t["state"] in ("COMPLETE", "PRUNED")]
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    best = (max if direction == "maximize" else min)(complete, key=lambda t: t["value"]) if complete else None
    defaults = next((t for t in trials if t["defaults"] and t["state"] == "COMPLETE"), None)
    summary = {
        "study": study.study_name, "storage": storage, **described, "direction": direction,
        "best_value": best["value"] if best else None, "best_params": best["params"] if best else None,
        "best_trial": best["number"] if best else None,
        "defaults_value": defaults["value"] if defaults else None,
        "defaults_params": defaults["params"] if defaults else None,
        "defaults_note": defaults_note,
        "trials_done": len(finished),
        "states": {s: sum(1 for t in trials if t["state"] == s) for s in sorted({t["state"] for t in trials})},
        "model": str(output / "model") if kept else None, "model_trial": kept["trial"] if kept else None,
        "defaults_model": str(output / "defaults-model") if (output / "defaults-model").is_dir() else None,
        "report": str(output / "trials.md"), "seconds_this_run": round(seconds, 1),
    }
    plots = {"history": plot_history(trials, metric, direction, output / "history.png"),
             "importances": plot_importances(study, output / "importances.png")}
    summary["plots"] = {name: str(path) for name, path in plots.items() if isinstance(path, Path)}
    notes = [f"{name}.png: {why}" for name, why in plots.items() if isinstance(why, str)]
    write_whole(output / "search.json", json.dumps({**summary, "trials": trials}, indent=1, default=str))
    write_whole(output / "trials.md", markdown(summary, trials, metric, notes))
    return summary


def trial_row(trial) -> dict:
    seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
               if trial.datetime_complete and trial.datetime_start else None)
    steps = trial.intermediate_values
    return {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
            "seconds": round(seconds, 1) if seconds is not None else None,
            "best_epoch": trial.user_attrs.get("best_epoch"), "probe_weight": trial.user_attrs.get("probe_weight"),
            "defaults": bool(trial.user_attrs.get("defaults")),
            "evaluations": len(steps), "last_reported": steps[max(steps)] if steps else None,
            "dev_metrics": trial.user_attrs.get("dev_metrics")}


def markdown(summary: dict, trials: list[dict], metric: str, notes: list[str]) -> str:
    frozen = ", frozen encoder" if summary["frozen"] else ""
    lines = [f"# Hyper-parameter search {summary['study']!r}: {summary['task']}, {summary['family']}{frozen}", "",
             f"- storage: {summary['storage']}",
             f"- trials: {summary['trials_done']} finished ("
             + ", ".join(f"{n} {s.lower()}" for s, n in summary["states"].items()) + ")",
             f"- objective: dev {metric} ({summary['direction']})"]
    if summary["best_trial"] is not None:
        lines.append(f"- best: trial {summary['best_trial']}, dev {metric} {summary['best_value']:.4f}: "
                     + format_params(summary["best_params"]))
    if summary["defaults_value"] is not None:
        lines.append(f"- defaults: dev {metric} {summary['defaults_value']:.4f}: "
                     + format_params(summary["defaults_params"]))
    elif summary["defaults_note"]:
        lines.append(f"- defaults: {summary['defaults_note']}")
    if summary["model"]:
        lines.append(f"- model: {summary['model']} (trial {summary['model_trial']})")
    lines += [f"- {note}" for note in notes]
    names = list(dict.fromkeys(n for t in trials for n in t["params"]))  # in the order trials draw them
    probe = any(t.get("probe_weight") is not None for t in trials)  # frozen segment classifiers mix a probe in
    header = ["trial", "state", f"dev {metric}", "seconds", "best epoch", *(["probe weight"] if probe else []), *names]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in trials:
        value = (f"{t['value']:.4f}" if t["value"] is not None else
                 f"({t['last_reported']:.4f} at evaluation {t['evaluations']})" if t["last_reported"] is not None else "")
        cells = [f"{t['number']}{' (defaults)' if t['defaults'] else ''}", t["state"].lower(), value,
                 f"{t['seconds']:.0f}" if t["seconds"] is not None else "",
                 f"{t['best_epoch']:g}" if isinstance(t["best_epoch"], (int, float)) else "",
                 *([format_value(t.get("probe_weight"))] if probe else []),
                 *[format_value(t["params"].get(n)) for n in names]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "A pruned trial shows its last reported dev score (of the layers trained so far) in brackets."]
    if probe:
        lines += ["Probe weight: the share of the linear probe in the frozen segment classifier's predictions, chosen "
                  "on dev after training (1: the probe alone, whatever the head learnt)."]
    return "\n".join(lines) + "\n"


def format_value(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_params(params: dict) -> str:
    return ", ".join(f"{n} {format_value(v)}" for n, v in params.items())


def plot_history(trials: list[dict], metric: str, direction: str, path: Path) -> Path | str:
    """Each trial's dev score by trial number, the best so far as a step line; a reason instead of a path
    when there is nothing to draw."""
    scored = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if not scored:
        return "no complete trial yet"
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(figsize=(8, 4.5))
    axes.scatter([t["number"] for t in scored], [t["value"] for t in scored], color="tab:blue", label="complete")
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["last_reported"] is not None]
    if pruned:
        axes.scatter([t["number"] for t in pruned], [t["last_reported"] for t in pruned], color="tab:gray",
                     marker="x", label="pruned (last reported)")
    best, line = None, []
    for t in scored:
        if best is None or (t["value"] > best if direction == "maximize" else t["value"] < best):
            best = t["value"]
        line.append((t["number"], best))
    axes.step([n for n, _ in line], [v for _, v in line], where="post", color="tab:red", label="best so far")
    defaults = [t for t in scored if t["defaults"]]
    if defaults:
        axes.scatter([defaults[0]["number"]], [defaults[0]["value"]], color="tab:green", marker="*", s=180,
                     zorder=3, label="defaults")
    axes.set(xlabel="trial", ylabel=f"dev {metric}", title="optimisation history")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    save_figure(fig, path)
    return path


def plot_importances(study, path: Path) -> Path | str:
    """Optuna's fANOVA importances of the parameters over the complete trials (seeded: the same trials
    give the same bars)."""
    import optuna

    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError) as error:
        return f"no importances ({error})"
    if not importances:
        return "no importances (fewer than two complete trials, or no parameter varied)"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    fig, axes = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    axes.barh(names, [importances[n] for n in names], color="tab:blue")
    axes.set(xlabel="importance (fANOVA, share of the variance of the dev score)", title="parameter importances")
    save_figure(fig, path)
    return path


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    handle, staging = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png", dir=path.parent)
    os.close(handle)
    fig.savefig(staging, dpi=110)
    plt.close(fig)
    os.chmod(staging, 0o644)  # mkstemp's files are private
    os.replace(staging, path)
