"""The best-model saver (longdoc.training.save_best): the output folder is never missing or half-written,
whatever fails or interrupts the swap; the best is kept by the metric's direction; only the main
process writes."""

import os
import signal
from types import SimpleNamespace

import pytest

from longdoc.training import save_best
from longdoc.training.save_best import SaveBest, save_model_folder


class FakeModel:
    """Writes the files a save_pretrained would, with `tag` in them."""

    def __init__(self, tag: str, files=("config.json", "model.safetensors")):
        self.tag, self.files = tag, files

    def save_pretrained(self, folder):
        for name in self.files:
            (folder / name).write_text(self.tag)


def _contents(folder) -> dict:
    return {p.name: p.read_text() for p in folder.iterdir()}


def _leftovers(parent, name="model") -> list:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_a_resave_replaces_the_folder_whole(tmp_path):
    out = tmp_path / "model"
    save_model_folder(FakeModel("one", ("config.json", "model.safetensors", "old-only.txt")), None, out)
    save_model_folder(FakeModel("two"), FakeModel("tok", ("tokenizer.json",)), out)
    assert _contents(out) == {"config.json": "two", "model.safetensors": "two", "tokenizer.json": "tok"}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("failing_call", [1, 2])  # 1: renaming the old folder aside, 2: renaming the new one in
def test_a_failed_swap_leaves_the_previous_model(tmp_path, monkeypatch, failing_call):
    out = tmp_path / "model"
    save_model_folder(FakeModel("one"), None, out)
    calls = []
    real_replace = os.replace

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == failing_call:
            raise KeyboardInterrupt  # as if Ctrl-C came through between the steps
        real_replace(src, dst)

    monkeypatch.setattr(save_best.os, "replace", flaky_replace)
    with pytest.raises(KeyboardInterrupt):
        save_model_folder(FakeModel("two"), None, out)
    assert _contents(out) == {"config.json": "one", "model.safetensors": "one"}
    assert _leftovers(tmp_path) == []


def test_a_failure_while_writing_leaves_the_previous_model(tmp_path):
    out = tmp_path / "model"
    save_model_folder(FakeModel("one"), None, out)

    class Broken(FakeModel):
        def save_pretrained(self, folder):
            super().save_pretrained(folder)
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_model_folder(Broken("two"), None, out)
    assert _contents(out) == {"config.json": "one", "model.safetensors": "one"}
    assert _leftovers(tmp_path) == []


def test_ctrl_c_during_the_swap_waits_until_the_new_model_is_in(tmp_path, monkeypatch):
    out = tmp_path / "model"
    save_model_folder(FakeModel("one"), None, out)
    seen = []
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        if not seen:  # right after the old folder went aside: the moment without an `out`
            seen.append(out.exists())
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(save_best.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_model_folder(FakeModel("two"), None, out)
    assert seen == [False]  # the signal did come in the middle of the swap...
    assert _contents(out) == {"config.json": "two", "model.safetensors": "two"}  # ...and was held until after it
    assert _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _evaluate(saver, score, epoch, world_zero=True):
    state = SimpleNamespace(epoch=epoch, is_world_process_zero=world_zero)
    saver.on_evaluate(None, state, None, metrics={"eval_loss": score, "eval_other": 0.5}, model=FakeModel(f"e{epoch}"))


@pytest.mark.parametrize("greater_is_better, best_epoch", [(True, 3), (False, 2)])
def test_the_best_is_kept_by_the_metrics_direction(tmp_path, greater_is_better, best_epoch):
    saver = SaveBest(tmp_path / "model", None, metric="loss", greater_is_better=greater_is_better)
    for epoch, score in enumerate([0.5, 0.2, 0.9, 0.9, 0.2], start=1):  # ties keep the first
        _evaluate(saver, score, epoch)
    assert saver.best["epoch"] == best_epoch and saver.best_score == {3: 0.9, 2: 0.2}[best_epoch]
    assert [h["epoch"] for h in saver.history] == [1, 2, 3, 4, 5] and saver.history[0]["other"] == 0.5
    assert _contents(tmp_path / "model")["config.json"] == f"e{best_epoch}"


def test_only_the_main_process_writes(tmp_path):
    saver = SaveBest(tmp_path / "model", None, metric="loss")
    _evaluate(saver, 0.7, 1, world_zero=False)
    assert saver.best["epoch"] == 1 and not (tmp_path / "model").exists()  # it knows the best all the same
