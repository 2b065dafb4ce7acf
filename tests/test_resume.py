"""Resuming training after a crash (longdoc.training.checkpoints): a run killed with SIGKILL and resumed
with --resume ends with the weights and dev scores of an uninterrupted run; what --resume refuses,
and why; the saved model is never left half-written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import load_file

from longdoc.cli import main
from longdoc.tasks import get_task
from longdoc.training import train
from longdoc.training.checkpoints import RUN_FILE, STATE_FILE, CheckpointState, checkpoint_folder, differences
from longdoc.training.save_best import SaveBest, recover_swap

from tiny_checkpoints import tiny_bert, write_documents

ROOT = Path(__file__).parents[1]
# where the checkpoint folder is when the run is killed: mid fine-tuning (4 steps an epoch), the second
# stage of two; and (slow: -m slow) the head warm-up just over, its last checkpoint complete, fine-tuning
# not checkpointed yet
KILL_POINTS = ["2-fine-tuning/checkpoint-6",
               pytest.param(f"1-head-warm-up/checkpoint-40/{STATE_FILE}", marks=pytest.mark.slow)]


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    monkeypatch.setenv("LONGDOC_BF16", "0")  # bf16 autocast would round away the equality compared here


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    return {"model": tiny_bert(folder / "bert"), "train": write_documents(folder / "train.jsonl", 16, 0),
            "dev": write_documents(folder / "dev.jsonl", 8, 1), "cache": folder / "cache"}


def command(files, output, *extra) -> list[str]:
    """Fine-tuning a segment classifier in two stages (head warm-up, then everything), checkpoints every 3 steps."""
    return ["train", "--task", "classification", "--family", "segment", "--model", str(files["model"]),
            "--train", str(files["train"]), "--validation", str(files["dev"]), "--output", str(output),
            "--chunk-size", "14", "--max-segments", "12", "--epochs", "3", "--batch-size", "4", "--save-steps", "3",
            "--cache-dir", str(files["cache"]), *extra]


@pytest.fixture(scope="module")
def uninterrupted(files, tmp_path_factory):
    output = tmp_path_factory.mktemp("uninterrupted") / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LONGDOC_BF16", "0")
        assert main(command(files, output)) == 0
    return output


def kill_when(process: subprocess.Popen, path: Path, timeout: float = 240) -> None:
    """SIGKILL `process` as soon as `path` appears (failing the test if it ends first)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path} appeared:\n{process.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def model_weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


TIMING = ("train_loss", "runtime", "samples_per_second", "steps_per_second")  # a resumed epoch's loss: its resumed steps


def assert_same_scores(history: list[dict], expected: list[dict], tolerance: float = 1e-5) -> None:
    """Every evaluation's dev scores alike (numbers within `tolerance`), the timings aside."""
    assert len(history) == len(expected)
    for record, reference in zip(history, expected):
        kept = lambda r: {k: v for k, v in r.items() if k not in TIMING}
        assert kept(record).keys() == kept(reference).keys()
        for key, value in kept(reference).items():
            if isinstance(value, float):
                assert record[key] == pytest.approx(value, abs=tolerance), (key, record, reference)
            else:
                assert record[key] == value, (key, record, reference)


@pytest.mark.parametrize("kill_point", KILL_POINTS)
def test_a_run_killed_mid_training_resumes_to_the_same_model(files, uninterrupted, tmp_path, kill_point):
    output = tmp_path / "model"
    killed = subprocess.Popen([sys.executable, "-m", "longdoc.cli", *command(files, output)], cwd=ROOT,
                              env={**os.environ, "LONGDOC_BF16": "0"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    checkpoints = checkpoint_folder(output)
    kill_when(killed, checkpoints / kill_point)
    assert killed.returncode == -signal.SIGKILL
    assert (checkpoints / RUN_FILE).is_file() and not (output / "training_report.json").exists()
    assert model_weights(output)  # the best model so far is whole: a head warm-up epoch's

    # a changed option is refused, naming it, before anything is trained
    assert main(command(files, output, "--resume", "--learning-rate", "0.001")) == 1
    assert main(command(files, output, "--resume")) == 0

    resumed = json.loads((output / "training_report.json").read_text())
    reference = json.loads((uninterrupted / "training_report.json").read_text())
    assert [r["stage"] for r in resumed["history"]] == ["head warm-up"] * 40 + ["fine-tuning"] * 3
    assert_same_scores(resumed["history"], reference["history"])
    assert_same_scores([resumed["dev_metrics"]], [reference["dev_metrics"]])
    assert resumed["best_stage"] == reference["best_stage"] and resumed["best_epoch"] == reference["best_epoch"]
    expected = model_weights(uninterrupted)
    weights = model_weights(output)
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, atol=1e-5, rtol=0, msg=name)
    assert not checkpoints.exists()  # a finished run deletes its checkpoints


def test_resume_without_checkpoints_says_where_it_looked(files, tmp_path, capsys):
    output = tmp_path / "model"
    assert main(command(files, output, "--resume")) == 1
    error = capsys.readouterr().err
    assert f"no checkpoint to resume from in {checkpoint_folder(output)}" in error and "without --resume" in error


# --- an interrupted frozen run (seconds): what --resume checks, and starting over -------------------


def frozen_run(files, output, **options):
    settings = dict(family="truncate", model=str(files["model"]), freeze_encoder=True, chunk_size=14, epochs=6,
                    learning_rate=3e-3, batch_size=8, cache_dir=str(files["cache"]),
                    min_checkpoint_seconds=0)  # epochs of milliseconds: a checkpoint after each all the same
    return train("classification", files["train"], files["dev"], output, **{**settings, **options})


@pytest.fixture
def interrupted(files, tmp_path, monkeypatch):
    """A frozen run stopped by Ctrl-C after its third evaluation (checkpointed at each epoch's end)."""
    output = tmp_path / "model"
    evaluate = SaveBest.on_evaluate

    def interrupt_after_three(self, *args, **kwargs):
        evaluate(self, *args, **kwargs)
        if len(self.history) == 3:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(SaveBest, "on_evaluate", interrupt_after_three)
        with pytest.raises(KeyboardInterrupt):
            frozen_run(files, output)
    return output


def test_an_interrupted_frozen_run_resumes_where_it_stopped(files, interrupted, tmp_path):
    (stage,) = checkpoint_folder(interrupted).glob("1-training")
    assert sorted(p.name for p in stage.iterdir()) == ["checkpoint-2", "checkpoint-4"]  # epochs 1 and 2: two kept
    state = json.loads((stage / "checkpoint-4" / STATE_FILE).read_text())
    assert len(state["save_best"]["history"]) == 2 and state["finished"] is False
    resumed = frozen_run(files, interrupted, resume=True)
    reference = frozen_run(files, tmp_path / "reference", checkpoints=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert_same_scores(resumed.history, reference.history, tolerance=1e-6)
    assert not checkpoint_folder(interrupted).exists()


def test_short_epochs_are_checkpointed_at_most_once_a_minute_and_at_the_end(files, tmp_path, monkeypatch):
    """Epochs of milliseconds: with the default spacing only the stage's last epoch is written."""
    task = type(get_task("classification"))
    monkeypatch.setattr(task, "finish", lambda self, run, save_best: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        frozen_run(files, tmp_path / "model", min_checkpoint_seconds=60)
    stage = checkpoint_folder(tmp_path / "model") / "1-training"
    assert sorted(p.name for p in stage.iterdir()) == ["checkpoint-12"]


def test_a_run_killed_after_its_last_checkpoint_resumes_to_the_end(files, tmp_path, monkeypatch):
    """The stage's last checkpoint marks it finished: the resumed run trains no more and goes on to the
    after-training step, which the interrupted run never reached."""
    task = type(get_task("classification"))
    finish = task.finish

    def killed(self, run, save_best):
        raise KeyboardInterrupt

    monkeypatch.setattr(task, "finish", killed)
    with pytest.raises(KeyboardInterrupt):
        frozen_run(files, tmp_path / "model")
    (last,) = checkpoint_folder(tmp_path / "model").glob("1-training/checkpoint-12")
    assert json.loads((last / STATE_FILE).read_text())["finished"] is True
    monkeypatch.setattr(task, "finish", finish)
    resumed = frozen_run(files, tmp_path / "model", resume=True)
    reference = frozen_run(files, tmp_path / "reference", checkpoints=False)
    assert_same_scores(resumed.history, reference.history, tolerance=1e-6)
    assert_same_scores([resumed.dev_metrics], [reference.dev_metrics], tolerance=1e-6)


def test_resume_names_every_changed_setting(files, interrupted, tmp_path):
    with pytest.raises(ValueError) as error:
        frozen_run(files, interrupted, resume=True, learning_rate=1e-3, chunk_size=12)
    message = str(error.value)
    assert "--learning-rate: 0.003 -> 0.001" in message and "--chunk-size: 14 -> 12" in message
    assert str(checkpoint_folder(interrupted)) in message and "without --resume" in message
    other = write_documents(tmp_path / "other.jsonl", 16, 5)
    with pytest.raises(ValueError, match=r"--train: .*train.jsonl .* -> .*other.jsonl"):
        frozen_run({**files, "train": other}, interrupted, resume=True)


def test_without_resume_a_run_starts_over_and_says_so(files, interrupted, caplog):
    caplog.set_level("WARNING", logger="longdoc")
    result = frozen_run(files, interrupted, epochs=1)
    assert "starting over" in caplog.text and str(checkpoint_folder(interrupted)) in caplog.text
    assert [r["epoch"] for r in result.history] == [1] and not checkpoint_folder(interrupted).exists()


def test_no_checkpoints_when_told_so(files, tmp_path):
    frozen_run(files, tmp_path / "model", epochs=1, checkpoints=False)
    assert not checkpoint_folder(tmp_path / "model").exists()
    with pytest.raises(ValueError, match="--resume needs checkpoints"):
        frozen_run(files, tmp_path / "model", checkpoints=False, resume=True)


# --- the saved model after a SIGKILL mid-swap ---------------------------------------------------------


def test_a_model_swap_killed_between_its_renames_is_undone(tmp_path):
    output = tmp_path / "model"
    old = tmp_path / ".model.old-123"  # renamed aside; the new one never renamed in
    old.mkdir()
    (old / "config.json").write_text("previous")
    (tmp_path / ".model.saving-abc").mkdir()
    recover_swap(output)
    assert (output / "config.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_model_swap_killed_after_its_renames_leaves_the_new_model(tmp_path):
    output = tmp_path / "model"
    output.mkdir()
    (output / "config.json").write_text("new")
    (tmp_path / ".model.old-123").mkdir()
    recover_swap(output)
    assert (output / "config.json").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_differences_show_old_and_new():
    old = {"epochs": 3, "options": {"freeze_encoder": True}}
    assert differences(old, {"epochs": 4, "options": {}}) == ["--epochs: 3 -> 4", "--freeze-encoder: true -> not given"]


# --- SaveBest's state in each checkpoint ----------------------------------------------------------------


def test_each_checkpoint_gets_savebests_state_and_the_last_complete_ones_are_kept(tmp_path):
    saver = SaveBest(tmp_path / "model", None, metric="loss", patience=3)
    saver.best, saver.history, saver.waited = {"epoch": 1.0, "loss": 0.5}, [{"epoch": 1.0, "loss": 0.5}], 2
    callback = CheckpointState(saver, keep=2)
    (tmp_path / "checkpoint-9").mkdir()  # one the process died writing: not counted, not deleted
    for step in (3, 6, 8):
        (tmp_path / f"checkpoint-{step}").mkdir()  # as the Trainer has just written it
        state = SimpleNamespace(is_world_process_zero=True, global_step=step, max_steps=8)
        callback.on_save(SimpleNamespace(output_dir=str(tmp_path)), state, SimpleNamespace(should_training_stop=False))
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8", "checkpoint-9"]
    written = json.loads((tmp_path / "checkpoint-8" / STATE_FILE).read_text())
    assert written["finished"] is True and not json.loads((tmp_path / "checkpoint-6" / STATE_FILE).read_text())["finished"]

    resumed = SaveBest(tmp_path / "model", None, metric="loss", patience=3)
    restoring = CheckpointState(resumed, restore=written)
    resumed.on_train_begin(None, None, None)  # a new stage's patience starts over...
    restoring.on_train_begin(None, None, None)  # ...a resumed one's does not
    assert resumed.waited == 2 and resumed.best == saver.best and resumed.history == saver.history


def test_a_checkpoint_due_at_an_epochs_last_step_waits_for_its_evaluation(tmp_path):
    """Else it would hold the state before that epoch's dev evaluation, which a resumed run never runs."""
    callback = CheckpointState(SaveBest(tmp_path / "model", None, metric="loss"))
    for epoch, saved_at_step in ((1.5, True), (2.0, False)):
        control = SimpleNamespace(should_save=True, should_training_stop=False)
        callback.on_step_end(None, SimpleNamespace(epoch=epoch), control)
        assert control.should_save is saved_at_step
    control = SimpleNamespace(should_save=False)
    callback.on_epoch_end(None, None, control)  # the Trainer evaluates, then saves
    assert control.should_save is True
