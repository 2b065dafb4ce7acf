"""Keeping the best model of a training run on disk, safely: one TrainerCallback for every task.

    saver = SaveBest(output, tokenizer, metric="macro_f1", greater_is_better=True)
    Trainer(..., callbacks=[saver])     # after each evaluation: saved when the metric improved

Each evaluation becomes a record in `history`: the training stage, the epoch, the mean training
loss since the last evaluation, and the dev scores; a log line says it (the task's `describe`
words the scores).

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


def write_whole(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: a reader (or another process writing it) never finds
    half a file; the staging name is this writer's own."""
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(staging, 0o644)  # mkstemp's files are private
    os.replace(staging, path)


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


def recover_swap(output: str | os.PathLike) -> None:
    """After a process died mid-swap (SIGKILL cannot be held back): put the previous model back if
    `output` is missing, and delete the leftover staging and old folders."""
    output = Path(output)
    if not output.parent.is_dir():
        return
    olds = sorted(output.parent.glob(f".{output.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not output.exists():
        logger.warning("putting back %s: the process writing a new model there died between two renames", output)
        os.replace(olds.pop(), output)
    for leftover in [*olds, *output.parent.glob(f".{output.name}.saving-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


class SaveBest(TrainerCallback):
    """After each evaluation: record the scores, and save the model to `output` when `metric`
    improved (strictly: the first of equal scores is kept) in the direction `greater_is_better`
    (default: lower is better for a loss, higher for any other score).

    `describe(record, metric)` words a record's scores for the log line (default: the metric alone);
    `stage` names the training stage the next records belong to. With `patience`, a stage stops once
    that many evaluations in a row have not improved on the best of the run (early stopping).
    `on_evaluation(record)`, when given, sees each record after it is handled; a true answer stops
    training (`stopped` is then set: a hyper-parameter search prunes a trial this way)."""

    def __init__(self, output: str | os.PathLike, tokenizer, metric: str, greater_is_better: bool | None = None,
                 describe=None, patience: int | None = None, on_evaluation=None):
        self.output, self.tokenizer = Path(output), tokenizer
        self.metric = metric
        self.greater_is_better = not metric.endswith("loss") if greater_is_better is None else greater_is_better
        self.describe = describe or (lambda record, metric: f"dev {metric} {record.get(metric, float('nan')):.4f}")
        self.stage = "training"
        self.best: dict | None = None  # the record of the saved model
        self.history: list[dict] = []
        self.losses: list[float] = []  # training losses logged since the last evaluation
        self.patience = patience
        self.waited = 0  # evaluations of this stage since the best one
        self.on_evaluation = on_evaluation
        self.stopped = False  # on_evaluation asked to stop

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else self.best[self.metric]

    @property
    def best_epoch(self) -> float | None:
        return None if self.best is None else self.best["epoch"]

    @property
    def best_stage(self) -> str | None:
        return None if self.best is None else self.best.get("stage")

    @property
    def best_metrics(self) -> dict:
        """The saved model's dev scores (its record less stage, epoch and training loss)."""
        return {k: v for k, v in (self.best or {}).items() if k not in ("stage", "epoch", "train_loss")}

    def best_when(self) -> str:
        """'epoch 3', or 'head warm-up epoch 16' when training ran in stages."""
        return f"{stage_prefix(self.best_stage)}epoch {self.best_epoch:g}"

    def improves(self, score: float) -> bool:
        if self.best is None:
            return True
        return score > self.best_score if self.greater_is_better else score < self.best_score

    def save(self, model) -> None:
        """Write `model` over the saved one (a task's after-training step), on the main process only."""
        from ..runtime import is_main_process

        if is_main_process():
            save_model_folder(model, self.tokenizer, self.output)

    def on_train_begin(self, args, state, control, **kwargs):
        self.waited = 0  # each stage has its own patience

    def checkpoint_state(self) -> dict:
        """What a resumed run needs to go on as if never stopped (kept in each Trainer checkpoint)."""
        return {"stage": self.stage, "best": self.best, "history": self.history, "losses": self.losses,
                "waited": self.waited}

    def restore(self, state: dict) -> None:
        """Back to a `checkpoint_state` (the model it names as best is the one in `output`)."""
        self.stage, self.best, self.history = state["stage"], state["best"], state["history"]
        self.losses, self.waited = state["losses"], state["waited"]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def make_record(self, state, scores: dict) -> dict:
        train_loss = sum(self.losses) / len(self.losses) if self.losses else None
        self.losses = []
        return {"stage": self.stage, "epoch": state.epoch, "train_loss": train_loss, **scores}

    def report(self, record: dict, saved: bool) -> None:
        epoch = f"{stage_prefix(record.get('stage'))}epoch {record['epoch'] or 0:g}"
        scores = self.describe(record, self.metric)
        if saved:
            logger.info("%s: %s -> saved to %s", epoch, scores, self.output)
        else:
            logger.info("%s: %s (best %s %.4f)", epoch, scores, self.metric.replace("_", "-"), self.best_score)

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
        self.waited = 0 if improved else self.waited + 1
        if self.patience is not None and self.waited >= self.patience and not control.should_training_stop:
            control.should_training_stop = True
            logger.info("early stopping: %d evaluation%s without improvement", self.waited,
                        "" if self.waited == 1 else "s")
        if self.on_evaluation is not None and self.on_evaluation(record):
            self.stopped = control.should_training_stop = True


def stage_prefix(stage: str | None) -> str:
    """'' for a one-stage training, else the stage's name and a space."""
    return "" if stage in (None, "training") else f"{stage} "
