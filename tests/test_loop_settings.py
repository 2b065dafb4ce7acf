"""The training loop's settings every task shares (accumulation, warm-up, decay, max steps, early
stopping, precision): checked before any model is built, and reaching the Trainer and the optimizer."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib
from types import SimpleNamespace

import pytest

from longdoc.cli import build_parser, main
from longdoc.cli.tasks import training_call
from longdoc.training import train
from longdoc.training.loop_settings import LoopSettings
from longdoc.training.save_best import SaveBest

from tiny_checkpoints import write_splits

training = importlib.import_module("longdoc.training.train")  # the module (the package exports its train())


@pytest.fixture(scope="module")
def encoder(tiny_encoder):
    return tiny_encoder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("data"), {"train": 24, "dev": 8})


@pytest.mark.parametrize("settings, message", [
    (dict(gradient_accumulation_steps=0), "--gradient-accumulation-steps must be a positive whole number"),
    (dict(max_steps=-3), "--max-steps must be a positive whole number"),
    (dict(save_steps=2.5), "--save-steps must be a positive whole number"),
    (dict(early_stopping_patience=0), "--early-stopping-patience must be 1 or more"),
    (dict(warmup_ratio=1.0), "--warmup-ratio is the share of steps"),
    (dict(weight_decay=-0.1), "--weight-decay must be 0 or more"),
    (dict(bf16=True, fp16=True), "--bf16 or --fp16, not both"),
    (dict(fp16=True), "--fp16 needs a CUDA GPU"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        LoopSettings.from_options(settings, "cpu")


def test_fp16_on_a_cpu_fails_before_any_model_is_built(encoder, data, tmp_path, capsys):
    status = main(["train", "--model", str(encoder), "--train", str(data["train"]), "--validation",
                   str(data["dev"]), "--output", str(tmp_path / "out"), "--freeze-encoder", "--fp16"])
    assert status == 1 and "--fp16 needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_flags_reach_train_for_every_task(encoder, data):
    for task in ("classification", "question-answering", "summarization"):
        args = build_parser().parse_args(
            ["train", "--task", task, "--model", str(encoder), "--train", "t", "--validation", "d", "--output", "o",
             "--gradient-accumulation-steps", "4", "--warmup-ratio", "0.2", "--weight-decay", "0.05", "--max-steps",
             "7", "--early-stopping-patience", "2", "--bf16"])
        _, options = training_call(args, SimpleNamespace(print=print, note=print))
        assert {k: options[k] for k in ("gradient_accumulation_steps", "warmup_ratio", "weight_decay", "max_steps",
                                        "early_stopping_patience", "bf16")} == dict(
            gradient_accumulation_steps=4, warmup_ratio=0.2, weight_decay=0.05, max_steps=7,
            early_stopping_patience=2, bf16=True), task


def test_settings_reach_the_trainer_and_the_optimizer(encoder, data, tmp_path, monkeypatch):
    """Fine-tuning trains in two stages: the loop's settings reach the stages' Trainer arguments (max steps only
    the last) and the classifier's own optimizer (weight decay)."""
    seen = []

    def record(stage, run, save_best, loop=None, last=True, checkpoints=None):
        optimizer = stage.optimizer(run.model)
        seen.append((stage.name, training.trainer_arguments(stage, run, loop, last),
                     {group["weight_decay"] for group in optimizer.param_groups}))

    monkeypatch.setattr(training, "fit", record)
    train("classification", data["train"], data["dev"], tmp_path / "out", model=str(encoder), family="segment",
          chunk_size=14, epochs=1, cache_dir=tmp_path / "cache", gradient_accumulation_steps=3, warmup_ratio=0.25,
          weight_decay=0.125, max_steps=5)
    assert [name for name, _, _ in seen] == ["head warm-up", "fine-tuning"]
    warm, fine = seen[0][1], seen[1][1]
    for arguments in (warm, fine):
        assert arguments["gradient_accumulation_steps"] == 3 and arguments["warmup_steps"] == 0.25
    assert "max_steps" not in warm and fine["max_steps"] == 5
    assert seen[1][2] <= {0.0, 0.125} and 0.125 in seen[1][2]  # no decay on biases and norms, 0.125 elsewhere


def test_max_steps_stops_mid_epoch_and_evaluates(encoder, data, tmp_path):
    result = train("classification", data["train"], data["dev"], tmp_path / "out", model=str(encoder),
                   family="segment", freeze_encoder=True, chunk_size=14, epochs=5, batch_size=8,
                   cache_dir=tmp_path / "cache", max_steps=2)
    assert [record["epoch"] for record in result.history] == [pytest.approx(2 / 3)]  # 3 steps an epoch
    assert (tmp_path / "out" / "config.json").is_file()


def test_early_stopping_ends_a_run_that_stopped_improving(encoder, data, tmp_path):
    """A learning rate too small to move a weight: the first evaluation stays the best, and with patience 2 the
    run stops after two more instead of running its 8 epochs."""
    result = train("classification", data["train"], data["dev"], tmp_path / "out", model=str(encoder),
                   family="segment", freeze_encoder=True, chunk_size=14, epochs=8, batch_size=8, learning_rate=1e-12,
                   cache_dir=tmp_path / "cache", early_stopping_patience=2)
    assert [record["epoch"] for record in result.history] == [1, 2, 3]
    assert result.best_epoch == 1


def test_patience_counts_per_stage_and_only_non_improving_evaluations():
    saver = SaveBest("unused", None, "loss", patience=2)
    state = SimpleNamespace(epoch=0, is_world_process_zero=False)
    stops = []
    for loss in (1.0, 0.9, 0.95, 0.8, 0.85, 0.81):
        control = SimpleNamespace(should_training_stop=False)
        saver.on_evaluate(None, state, control, metrics={"eval_loss": loss})
        stops.append(control.should_training_stop)
    assert stops == [False, False, False, False, False, True]
    saver.on_train_begin(None, state, None)  # a new stage starts with its patience whole
    control = SimpleNamespace(should_training_stop=False)
    saver.on_evaluate(None, state, control, metrics={"eval_loss": 0.9})
    assert not control.should_training_stop


def test_summarizer_precision_follows_bf16():
    from longdoc.tasks import get_task

    task = get_task("summarization")
    run = SimpleNamespace(options={"bf16": True})
    assert task.settings(run)["precision"] == "bf16"
    assert task.settings(SimpleNamespace(options={"bf16": True, "precision": "fp32"}))["precision"] == "fp32"
