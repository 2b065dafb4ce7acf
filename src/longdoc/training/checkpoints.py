"""Resumable training: the Trainer checkpoints of a run, and going on from the last one (`--resume`).

    <output>.checkpoints/
        run.json                         what the run was started with: task, family, model, the data
                                         files (size, sha256), epochs, learning rate, batch size, seed, options
        1-head-warm-up/checkpoint-240/   a Trainer checkpoint: the model's weights, optimizer, scheduler,
                                         RNG states, trainer_state.json, and longdoc_state.json (SaveBest's
                                         records: best, history, patience waited)
        2-fine-tuning/checkpoint-12/

Each stage's Trainer writes a checkpoint every `save_steps` optimizer steps (default: every epoch) and
keeps the last `save_total_limit`. `CheckpointState` adds longdoc_state.json once the Trainer has
written the rest, so a checkpoint without it is one the process died writing: it is ignored (and
deleted on resume). `--resume` compares run.json with the new run (a ValueError names each
difference), finds the latest complete checkpoint across stages, skips the stages before it, and the
Trainer restores model, optimizer, scheduler, RNG and data position from it; SaveBest's records come
back from longdoc_state.json. A run that finishes deletes the folder: its model is in `output`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy

from ..runtime import is_main_process
from .loop_settings import LoopSettings, flag
from .save_best import recover_swap, write_whole

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
STATE_FILE = "longdoc_state.json"
# options that may change between a run and its resumption: they change where and how often
# checkpoints go, not what is trained
NOT_COMPARED = ("resume", "save_steps", "save_total_limit", "checkpoints", "min_checkpoint_seconds")
COMPARED = ("task", "family", "model", "train", "validation", "epochs", "learning_rate", "batch_size", "seed")


def checkpoint_folder(output: str | os.PathLike) -> Path:
    """Where a run writing its model to `output` keeps its checkpoints: `<output>.checkpoints` beside it."""
    output = Path(output)
    return output.parent / f"{output.name}.checkpoints"


# --- what a run was started with ----------------------------------------------------------------------


def run_fingerprint(task: str, family: str, model, train, validation, epochs, learning_rate, batch_size, seed,
                    options: dict) -> dict:
    """The settings and data that decide what a run trains, as JSON (run.json)."""
    given = {name: value for name, value in options.items() if name not in NOT_COMPARED and value is not None}
    return {"task": task, "family": family, "model": model_source(model), "train": data_file(train),
            "validation": data_file(validation), "epochs": epochs, "learning_rate": learning_rate,
            "batch_size": batch_size, "seed": seed, "options": jsonable(given)}


def model_source(model) -> str:
    """A local checkpoint as an absolute path (the run may resume from another folder); a hub id as given."""
    return os.path.abspath(model) if os.path.exists(model) else str(model)


def data_file(path) -> dict:
    """A data file by its content: a resumed run must read the same examples."""
    path = Path(path)
    if not path.is_file():
        return {"file": str(path)}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"file": str(path.resolve()), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def jsonable(options: dict) -> dict:
    """The options that JSON can hold, as JSON reads them back (tuples become lists, paths strings)."""
    kept = {}
    for name, value in sorted(options.items()):
        try:
            kept[name] = json.loads(json.dumps(value, default=_path))
        except (TypeError, ValueError):
            logger.debug("option %s (%r) is not recorded for --resume to compare", name, value)
    return kept


def _path(value) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def differences(old: dict, new: dict) -> list[str]:
    """One line per setting that differs between two fingerprints: '--learning-rate: 0.001 -> 0.002'."""
    lines = []
    for key in COMPARED:
        before, after = old.get(key), new.get(key)
        if key in ("train", "validation"):
            content = lambda entry: (entry or {}).get("sha256", (entry or {}).get("file"))
            if content(before) != content(after):
                lines.append(f"--{key}: {describe_file(before)} -> {describe_file(after)}")
        elif before != after:
            lines.append(f"--{flag(key)}: {show(before)} -> {show(after)}")
    before, after = old.get("options", {}), new.get("options", {})
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            lines.append(f"--{flag(name)}: {show(before.get(name))} -> {show(after.get(name))}")
    return lines


def describe_file(entry: dict | None) -> str:
    if not entry:
        return "not given"
    if "sha256" not in entry:
        return entry["file"]
    return f"{entry['file']} ({entry['size']:,} bytes, sha256 {entry['sha256'][:12]})"


def show(value) -> str:
    return "not given" if value is None else json.dumps(value)


# --- the checkpoints of a run -------------------------------------------------------------------------


@dataclass
class StageCheckpoints:
    """Where one stage's Trainer writes its checkpoints, and what it resumes from."""

    folder: Path
    skip: bool = False  # the stage was over before the checkpoint the run resumes from
    resume_from: Path | None = None  # the checkpoint of this stage to go on from
    state: dict | None = None  # its longdoc_state.json

    @property
    def finished(self) -> bool:
        """The checkpoint is the stage's last (its steps ran out, or early stopping ended it)."""
        return bool(self.state and self.state["finished"])


class RunCheckpoints:
    """The checkpoint folder of one run; `start` checks a resumption, or clears an earlier run's folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.resume_at: tuple[int, Path] | None = None  # (stage number, checkpoint) to go on from

    @classmethod
    def start(cls, output: str | os.PathLike, fingerprint: dict, resume: bool) -> "RunCheckpoints":
        checkpoints = cls(checkpoint_folder(output))
        if resume:
            checkpoints.resume_at = checkpoints.find_resume_point(fingerprint)
            if is_main_process():
                recover_swap(output)  # the process may have died while putting a new best model in place
            logger.info(f"resuming from {checkpoints.resume_at[1]}")
            return checkpoints
        if checkpoints.folder.exists():
            logger.warning(f"starting over: the checkpoints of an earlier run in {checkpoints.folder} are deleted "
                           f"(--resume goes on from them instead)")
            if is_main_process():
                shutil.rmtree(checkpoints.folder)
        if is_main_process():
            checkpoints.folder.mkdir(parents=True)
            write_json(checkpoints.folder / RUN_FILE, fingerprint)
        return checkpoints

    def find_resume_point(self, fingerprint: dict) -> tuple[int, Path]:
        """(stage number, checkpoint) of the latest complete checkpoint; a ValueError saying why there is
        none, or naming every setting that differs from the interrupted run's."""
        start_over = "run without --resume to start over"
        if not self.folder.is_dir():
            raise ValueError(f"no checkpoint to resume from in {self.folder}: no such folder (a run keeps its "
                             f"checkpoints beside its --output and deletes them once it finishes); {start_over}")
        run_file = self.folder / RUN_FILE
        if not run_file.is_file():
            raise ValueError(f"no checkpoint to resume from in {self.folder}: it has no {RUN_FILE}; {start_over}")
        changed = differences(json.loads(run_file.read_text()), fingerprint)
        if changed:
            raise ValueError(f"--resume: this run's settings differ from those of the run checkpointed in "
                             f"{self.folder} (old -> new):\n  " + "\n  ".join(changed) +
                             f"\ngive the interrupted run's settings again, or {start_over} (its checkpoints are "
                             f"then deleted)")
        complete = self.complete_checkpoints()
        if not complete:
            raise ValueError(f"no checkpoint to resume from in {self.folder}: the run stopped before writing its "
                             f"first one; {start_over}")
        if is_main_process():
            self.delete_incomplete()
        stage, _, checkpoint = max(complete)
        return stage, checkpoint

    def checkpoint_folders(self) -> list[tuple[int, int, Path]]:
        """(stage number, step, folder) of every checkpoint folder, complete or not."""
        found = []
        for stage in self.folder.glob("[0-9]*-*"):
            for checkpoint in stage.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
                step = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", checkpoint.name)
                if step and checkpoint.is_dir():
                    found.append((int(stage.name.split("-", 1)[0]), int(step.group(1)), checkpoint))
        return found

    def complete_checkpoints(self) -> list[tuple[int, int, Path]]:
        return [found for found in self.checkpoint_folders() if (found[2] / STATE_FILE).is_file()]

    def delete_incomplete(self) -> None:
        """Checkpoints the process died writing: the Trainer would write into them again."""
        for _, _, checkpoint in self.checkpoint_folders():
            if not (checkpoint / STATE_FILE).is_file():
                logger.info(f"deleting the incomplete checkpoint {checkpoint}")
                shutil.rmtree(checkpoint, ignore_errors=True)

    def stage(self, number: int, name: str) -> StageCheckpoints:
        """The checkpoints of the `number`th stage, called `name`."""
        folder = self.folder / f"{number}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}"
        if self.resume_at is None or number > self.resume_at[0]:
            return StageCheckpoints(folder)
        if number < self.resume_at[0]:
            return StageCheckpoints(folder, skip=True)
        checkpoint = self.resume_at[1]
        if checkpoint.parent != folder:
            raise ValueError(f"--resume: the checkpoint {checkpoint} is not one of stage {number} ({name}) of this run; "
                             f"run without --resume to start over")
        return StageCheckpoints(folder, resume_from=checkpoint, state=json.loads((checkpoint / STATE_FILE).read_text()))

    def remove(self) -> None:
        """Once the run is over: its model is in `output`, the checkpoints are of no more use."""
        if is_main_process():
            shutil.rmtree(self.folder, ignore_errors=True)


def checkpoint_arguments(loop: LoopSettings, folder: Path) -> dict:
    """The TrainingArguments fields that make a stage's Trainer write checkpoints into `folder`. It
    deletes none itself (it would, before CheckpointState completes the new one): CheckpointState does."""
    every = dict(save_strategy=IntervalStrategy.STEPS, save_steps=loop.save_steps) if loop.save_steps else \
        dict(save_strategy=IntervalStrategy.EPOCH)
    return dict(output_dir=str(folder), save_total_limit=None, **every)


class CheckpointState(TrainerCallback):
    """Adds SaveBest's state to each checkpoint the Trainer writes, then keeps the last `keep` complete
    ones; puts the state back on resume (after SaveBest's own on_train_begin, which would start its
    patience over). List it after SaveBest."""

    def __init__(self, save_best, restore: dict | None = None, keep: int = 2, min_seconds: float = 0):
        self.save_best, self.restore, self.keep = save_best, restore, keep
        self.min_seconds = min_seconds  # epoch checkpoints no closer than this (the stage's last excepted)
        self.save_at_epoch_end = False
        self.last_save = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()
        if self.restore is not None:
            self.save_best.restore(self.restore["save_best"])

    def on_step_end(self, args, state, control, **kwargs):
        # a checkpoint every N steps falling on an epoch's last step (or the stage's) would be written
        # before that epoch's dev evaluation, and a run resumed from it would never evaluate that epoch:
        # it waits for the epoch's end, after the evaluation
        if control.should_save and (float(state.epoch).is_integer() or control.should_training_stop):
            control.should_save, self.save_at_epoch_end = False, True

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.save_at_epoch_end:
            control.should_save, self.save_at_epoch_end = True, False
        # epochs of seconds (a head on cached vectors) would spend more time writing the whole model than
        # training: then a checkpoint at most every `min_seconds`, and always at the stage's end
        elif (control.should_save and self.min_seconds and state.global_step < state.max_steps
              and time.monotonic() - self.last_save < self.min_seconds):
            control.should_save = False

    def on_save(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()
        if not state.is_world_process_zero:
            return
        # the folder the Trainer has just written (Trainer._save_checkpoint names it so)
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        finished = bool(control.should_training_stop) or state.global_step >= state.max_steps
        write_json(checkpoint / STATE_FILE, {"global_step": state.global_step, "finished": finished,
                                             "save_best": self.save_best.checkpoint_state()})
        complete = sorted((int(found.parent.name.rpartition("-")[2]), found.parent)
                          for found in Path(args.output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*/{STATE_FILE}"))
        for _, older in complete[:-self.keep]:
            shutil.rmtree(older, ignore_errors=True)


def write_json(path: Path, value) -> None:
    """Write `value` as JSON, whole or not at all."""
    write_whole(path, json.dumps(value, indent=1, default=_plain))


def _plain(value):
    """numpy and torch scalars among the metrics, as numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
