"""Keeping the best model of a training run on disk, safely: one TrainerCallback for every trainer.

    saver = SaveBest(output, tokenizer, metric="macro_f1", greater_is_better=True)
    Trainer(..., callbacks=[saver])     # after each evaluation: saved when the metric improved

The model is written into a staging folder next to `output`, then swapped in: the old folder is
renamed aside, the new one renamed in, and only then is the old one deleted, with Ctrl-C (SIGINT)
and SIGTERM held back during the swap. At every moment `output` is either the previous complete
model or the new complete one. Only the main process (`state.is_world_process_zero`) writes.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held(signals=HELD_SIGNALS):
    """Defer `signals` until the block is done, then deliver them (main thread only: Python
    installs handlers there alone; elsewhere the block runs unguarded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(received):  # each once, in the order they came
            signal.raise_signal(signum)


def save_model_folder(model, tokenizer, output: str | os.PathLike) -> None:
    """Write `model` (and `tokenizer`, unless None) into `output`, replacing what was there as a whole."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.saving-", dir=output.parent))
    try:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        with signals_held():
            _swap_in(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only left when writing or the swap failed


def _swap_in(staging: Path, output: Path) -> None:
    """Rename `output` aside, `staging` in, then delete the old folder; a failure in between puts
    the old folder back, so `output` is never missing."""
    old = None
    if output.exists():
        old = output.parent / f".{output.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(output, old)
    try:
        os.replace(staging, output)
    except BaseException:
        if old is not None and not output.exists():
            os.replace(old, output)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class SaveBest(TrainerCallback):
    """After each evaluation: record the scores, and save the model to `output` when `metric`
    improved (strictly: the first of equal scores is kept) in the direction `greater_is_better`.

    Subclasses add fields to a record (`make_record`) and say what happened (`report`)."""

    def __init__(self, output: str | os.PathLike, tokenizer, metric: str, greater_is_better: bool = True):
        self.output, self.tokenizer = Path(output), tokenizer
        self.metric, self.greater_is_better = metric, greater_is_better
        self.best: dict | None = None  # the record of the saved model
        self.history: list[dict] = []

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else self.best[self.metric]

    def improves(self, score: float) -> bool:
        if self.best is None:
            return True
        return score > self.best_score if self.greater_is_better else score < self.best_score

    def make_record(self, state, scores: dict) -> dict:
        return {"epoch": state.epoch, **scores}

    def report(self, record: dict, saved: bool) -> None:
        best = "saved" if saved else f"best {self.best_score:.4f}"
        logger.info("epoch %g: dev %s %.4f (%s)", record["epoch"] or 0, self.metric, record[self.metric], best)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        scores = {k.removeprefix("eval_"): v for k, v in (metrics or {}).items()}
        record = self.make_record(state, scores)
        self.history.append(record)
        score = record.get(self.metric)
        if score is None:
            return
        improved = self.improves(score)
        if improved:
            self.best = record
            if state.is_world_process_zero:
                save_model_folder(model, self.tokenizer, self.output)
        self.report(record, improved)
