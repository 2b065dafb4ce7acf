"""The hyper-parameter search (longdoc.training.search, `longdoc search`): the space file and its
errors, a search on a tiny frozen-encoder classifier (model, report, resume), pruning, two processes
sharing one SQLite study, and a storage that cannot be opened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

optuna = pytest.importorskip("optuna")

from longdoc.cli import main
from longdoc.families.base import TrainingDefaults
from longdoc.training.save_best import SaveBest
from longdoc.training.search import PruningReporter, search
from longdoc.training.search_report import plot_importances
from longdoc.training.search_space import PARAMETERS, Parameter, build_space, default_space, read_space_file
from longdoc.training.train import train

from tiny_checkpoints import write_splits

FROZEN = TrainingDefaults(epochs=40, learning_rate=1e-3, batch_size=16, select_metric="loss")


@pytest.fixture(scope="module")
def encoder(tiny_encoder):
    return tiny_encoder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("data"), {"train": 32, "dev": 12})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def tiny_options(encoder, cache) -> dict:
    return dict(model=str(encoder), freeze_encoder=True, chunk_size=14, cache_dir=str(cache), epochs=2)


# -- the space ------------------------------------------------------------------------------------


def test_the_default_space_and_a_file_over_it(tmp_path):
    base = default_space("classification", "segment", True, FROZEN)
    assert base["learning_rate"] == Parameter("learning_rate", 1e-4, 1e-2, log=True)
    assert base["epochs"].low == 10 and base["epochs"].high == 60 and "aggregator_layers" in base
    assert "aggregator_layers" not in default_space("classification", "chunk-pool", True, FROZEN)
    assert "classifier_dropout" not in default_space("question-answering", "longformer", False, FROZEN)
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {low: 1e-5, high: 1e-3, log: true}\nepochs: {choices: [3, 5]}\n"
                    "weight_decay: 0.05\naggregator_dropout: null\n")
    space = build_space(base, read_space_file(path), family="segment")
    assert space.parameters["learning_rate"] == Parameter("learning_rate", 1e-5, 1e-3, log=True)  # '1e-5' is text in YAML
    assert space.parameters["epochs"].choices == (3, 5)
    assert space.fixed == {"weight_decay": 0.05}
    assert "weight_decay" not in space.parameters and "aggregator_dropout" not in space.parameters
    assert "batch_size" in space.parameters  # the rest of the default space stays
    assert space.split({"learning_rate": 1e-4, "weight_decay": 0.0, "aggregator_layers": 2}) == (
        {"learning_rate": 1e-4}, {"weight_decay": 0.0}, {"aggregator_layers": 2})


@pytest.mark.parametrize("entries, message", [
    ({"learning_rat": {"low": 1, "high": 2}, "dropout": 0.1}, "unknown parameters learning_rat, dropout; the known "
     "ones are " + ", ".join(PARAMETERS)),
    ({"learning_rate": {"low": 1e-3, "high": 1e-4}}, "learning_rate: low (0.001) must be below high (0.0001)"),
    ({"weight_decay": {"low": 0, "high": 0.1, "log": True}}, "weight_decay: a log range needs low above 0"),
    ({"epochs": {"low": 1.5, "high": 4}}, "epochs: takes whole numbers, got 1.5"),
    ({"epochs": {"low": "many", "high": 4}}, "epochs: expected a number, got 'many'"),
    ({"warmup_ratio": {"low": 0, "high": 1}}, "warmup_ratio: 1 is out of range (from 0 to below 1)"),
    ({"batch_size": {"choices": []}}, "batch_size: choices must be a non-empty list"),
    ({"epochs": {"low": 1}}, "epochs: give low and high"),
    ({"epochs": {"min": 1, "max": 3}}, "epochs: unknown keys max, min"),
    ({"learning_rate": {"low": 0, "high": 1e-3}, "epochs": {"low": 5, "high": 2}},
     "learning_rate: 0 is out of range (above 0); epochs: low (5) must be below high (2)"),
])
def test_bad_space_entries_are_named(entries, message):
    base = default_space("classification", "segment", True, FROZEN)
    with pytest.raises(ValueError, match="^the search space: ") as error:
        build_space(base, entries)
    assert message in str(error.value)


def test_model_settings_the_family_lacks_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="aggregator_layers are model settings that --family chunk-pool does not have"):
        build_space({}, {"aggregator_layers": {"low": 1, "high": 3}}, family="chunk-pool")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- learning_rate\n")
    with pytest.raises(ValueError, match="give a mapping of parameter names to ranges"):
        read_space_file(bad)
    with pytest.raises(ValueError, match="cannot read it"):
        read_space_file(tmp_path / "missing.yaml")


def test_checkpoint_flags_are_refused_a_search_resumes_by_itself(tmp_path, capsys):
    code = main(["search", "--model", "m", "--train", "t.jsonl", "--validation", "d.jsonl", "--output",
                 str(tmp_path / "out"), "--resume", "--save-steps", "5"])
    assert code == 1
    assert "longdoc search does not take --resume, --save-steps" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_bad_space_file_fails_the_command_before_training(encoder, data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {low: 0.1, high: 0.01}\nlayers: 3\n")
    status = main(["search", "--model", str(encoder), "--train", str(data["train"]), "--validation",
                   str(data["dev"]), "--output", str(tmp_path / "out"), "--freeze-encoder", "--space", str(space)])
    assert status == 1
    assert f"--space {space}: unknown parameter layers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_optuna_missing_names_the_extra(monkeypatch, data, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r"pip install 'longdoc\[tune\]'"):
        search("classification", data["train"], data["dev"], tmp_path / "out", model="x")


# -- searching, resuming ------------------------------------------------------------------------------


def test_a_search_keeps_the_best_model_writes_the_report_and_resumes(encoder, data, cache, tmp_path):
    out = tmp_path / "search"
    first = search("classification", data["train"], data["dev"], out, trials=1, **tiny_options(encoder, cache))
    assert first["trials_done"] == 1 and first["metric"] == "macro_f1" and first["storage"].endswith("study.db")
    assert first["defaults_value"] is not None  # trial 0 ran the defaults (epochs fixed at 2 by the caller)
    assert first["defaults_params"]["learning_rate"] == 1e-3 and first["defaults_params"]["batch_size"] == 16
    kept = json.loads((out / "model" / "search_trial.json").read_text())
    assert kept["value"] == first["best_value"] and (out / "model" / "config.json").is_file()
    assert {"study.db", "trials.md", "search.json", "history.png"} <= {p.name for p in out.iterdir()}
    table = (out / "trials.md").read_text()
    assert "| 0 (defaults) | complete |" in table

    again = search("classification", data["train"], data["dev"], out, trials=2, **tiny_options(encoder, cache))
    report = json.loads((out / "search.json").read_text())
    assert again["trials_done"] == 2 and [t["number"] for t in report["trials"]] == [0, 1]  # one more, not two
    assert report["trials"][0]["defaults"] and not report["trials"][1]["defaults"]  # the defaults ran once
    assert "| 1 | complete |" in (out / "trials.md").read_text()


def test_a_study_of_another_search_is_refused(encoder, data, cache, tmp_path):
    storage = f"sqlite:///{tmp_path / 'other.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.set_user_attr("search", {"task": "summarization"})
    with pytest.raises(ValueError, match="study 's' in .* is a search of .*summarization.*give another --study"):
        search("classification", data["train"], data["dev"], tmp_path / "out", trials=1, storage=storage,
               study_name="s", **tiny_options(encoder, cache))


def test_importances_plot(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + 0.01 * t.suggest_float("b", 0, 1), n_trials=8)
    assert plot_importances(study, tmp_path / "importances.png") == tmp_path / "importances.png"
    assert (tmp_path / "importances.png").stat().st_size > 1000
    assert "no importances" in plot_importances(optuna.create_study(), tmp_path / "none.png")


# -- pruning ------------------------------------------------------------------------------------------


def test_the_reporter_prunes_a_trial_below_the_median():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    reporter = PruningReporter(good, "macro_f1")
    assert [reporter({"macro_f1": v}) for v in (0.5, 0.7, 0.9)] == [False, False, False]
    study.tell(good, 0.9)
    bad = study.ask()
    reporter = PruningReporter(bad, "macro_f1")
    assert reporter({"loss": 1.0}) is False and reporter.step == 0  # no score: nothing reported
    assert reporter({"macro_f1": 0.2}) is True and reporter.pruned
    assert bad.storage.get_trial(bad._trial_id).intermediate_values == {0: 0.2}


def test_the_head_warm_up_is_not_reported_its_settings_are_not_the_trials():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    study.tell(study.ask(), 0.9)
    trial = study.ask()
    reporter = PruningReporter(trial, "macro_f1")
    assert reporter({"stage": "head warm-up", "macro_f1": 0.01}) is False and reporter.step == 0
    reporter({"stage": "fine-tuning", "macro_f1": 0.6})
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {0: 0.6}


def test_a_stop_from_the_hook_stops_training_and_skips_later_steps(encoder, data, cache, tmp_path):
    seen = []

    def stop_at_second(record):
        seen.append(record["epoch"])
        return len(seen) == 2

    result = train("classification", data["train"], data["dev"], tmp_path / "m", **{
        **tiny_options(encoder, cache), "epochs": 5, "on_evaluation": stop_at_second})
    assert seen == [1.0, 2.0] and len(result.history) == 2
    assert result.probe is None  # the after-training step (the probe) did not run
    saver = SaveBest(tmp_path / "x", None, "loss", on_evaluation=lambda record: True)
    control = SimpleNamespace(should_training_stop=False)
    saver.on_evaluate(None, SimpleNamespace(epoch=1, is_world_process_zero=False), control, metrics={"eval_loss": 1})
    assert control.should_training_stop and saver.stopped


def test_a_search_prunes_trials_worse_than_the_median(encoder, data, cache, tmp_path, monkeypatch):
    """Trial 0 learns; trials 1 and 2 (queued) have a learning rate too small to learn: pruned."""
    from longdoc.training import search as search_module

    monkeypatch.setattr(search_module, "pruner", lambda optuna, frozen: optuna.pruners.MedianPruner(n_startup_trials=1))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.enqueue_trial({"learning_rate": 1e-2}, user_attrs={"defaults": True})  # in the place of the defaults
    for _ in range(2):
        study.enqueue_trial({"learning_rate": 1e-9})
    space = {n: None for n in ("batch_size", "weight_decay", "warmup_ratio", "classifier_dropout",
                               "aggregator_layers", "aggregator_dropout")}
    space["learning_rate"] = {"low": 1e-9, "high": 1e-1, "log": True}
    summary = search("classification", data["train"], data["dev"], tmp_path / "out", trials=3, space=space,
                     storage=storage, study_name="s", **{**tiny_options(encoder, cache), "epochs": 3})
    trials = json.loads((tmp_path / "out" / "search.json").read_text())["trials"]
    assert [(t["params"]["learning_rate"], t["state"]) for t in trials] == [
        (1e-2, "COMPLETE"), (1e-9, "PRUNED"), (1e-9, "PRUNED")], trials
    assert all(t["evaluations"] < 3 for t in trials[1:])  # stopped before the last epoch
    assert summary["best_trial"] == 0 and summary["states"] == {"COMPLETE": 1, "PRUNED": 2}


# -- storage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, messages", [
    ("postgresql+psycopg2://me:secret@127.0.0.1:1/none",  # no driver here: ImportError; with one: no server
     ["cannot open the study storage postgresql+psycopg2://me:***@127.0.0.1:1/none: ",
      "PostgreSQL and MySQL URLs need their driver installed"]),
    ("sqlite:////no/such/folder/study.db", ["the folder /no/such/folder does not exist"]),
    ("not a url", ["cannot open the study storage not a url: ArgumentError"]),
])
def test_a_storage_that_cannot_be_opened(url, messages, data, tmp_path):
    with pytest.raises(ValueError) as error:
        search("classification", data["train"], data["dev"], tmp_path / "out", storage=url, model="x",
               freeze_encoder=True)
    assert all(m in str(error.value) for m in messages), str(error.value)
    assert "secret" not in str(error.value)


def test_two_processes_share_one_sqlite_study(encoder, data, cache, tmp_path):
    """Two `longdoc search` processes on one SQLite study and output folder: each runs trials until the
    study holds 3; together they ran every trial of it, none twice, without an error."""
    command = [sys.executable, "-m", "longdoc.cli", "search", "--model", str(encoder), "--train", str(data["train"]),
               "--validation", str(data["dev"]), "--output", str(tmp_path / "out"), "--freeze-encoder",
               "--chunk-size", "14", "--epochs", "2", "--cache-dir", str(cache), "--trials", "3",
               "--storage", f"sqlite:///{tmp_path / 'shared.db'}", "--study", "s"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    ran = [{int(line.split()[1].rstrip(":")) for line in err.splitlines() if line.startswith("trial ")}
           for _, err in outputs]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'shared.db'}")
    numbers = {t.number for t in study.trials}
    assert ran[0] | ran[1] == numbers and not ran[0] & ran[1], ran
    assert len(numbers) >= 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert sum(t.user_attrs.get("defaults", False) for t in study.trials) == 1
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(s["trials_done"] >= 3 for s in summaries)
