"""What a task is, and the one registry of tasks and their aliases.

A task is one module (tasks/<name>.py) with one `Task` subclass that declares:

- what it reads: `read(path, options)` checks a data file and returns its examples (every problem a
  DataError naming the file and line, found before any model is built);
- the head kind it asks of a family (`head`, one of `families.HEAD_KINDS`) and its default family;
- its features and collator (`features`, `collator`), its metrics (`compute_metrics`) with the
  primary metric that picks the saved model and its direction (`primary_metric`,
  `greater_is_better`), and any stages or after-training step of its own (`stages`, `finish`);
- its pipeline class (`pipeline`, "module:Class"), the JSON a prediction becomes
  (`prediction_json`) and the metrics of a saved model on a labelled file (`evaluate_file`);
- for cross-validation, what folds are stratified by (`fold_labels`) and grouped by when no group
  column is named (`fold_groups`);
- its command-line arguments (`add_arguments(command, parser)` for the shared commands "train",
  "evaluate" and "predict"), the settings `train` takes from them (`training_options`) and the
  lines that report a training (`training_summary`), and its own commands (`commands`), run by
  `run(command, args, out)` (evaluate, predict and its own; tasks write through `out`, never print);
- for the HTTP service (longdoc.serve), its endpoint's verb and request fields (`serve_action`,
  `serve_fields`), its checks and limits, the options that keep requests apart in batches, and one
  pipeline call for a batch of requests (`serve_predict`); see docs/serving.md.

`longdoc.training.train(task, ...)` trains every task the same way on `transformers`' Trainer, calling
the hooks below. This module imports no torch: the command line builds its parser from the
registry before anything heavy loads (task modules import torch inside their methods).

    from longdoc.tasks import get_task
    task = get_task("sequential-sentence-classification")   # aliases resolve: task.name == "sentences"
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DataError

SHARED_COMMANDS = ("train", "evaluate", "predict")


_REQUIRED = object()


@dataclass(frozen=True)
class RequestField:
    """One field of a served task's request body (longdoc.serve turns these into a JSON schema): its name,
    Python type (str, bool, int, float, list[str], or `X | None`), default (none: required), description,
    and bounds (`minimum` and `maximum` for numbers, `min_length` for strings and lists). Bound every option
    that sets an amount of work (beams, answers kept...): a client must not make one request cost hours."""

    name: str
    type: Any
    default: Any = _REQUIRED
    description: str = ""
    minimum: float | None = None
    min_length: int | None = None
    maximum: float | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass
class TrainingData:
    """A task's training and dev examples as `read` returned them, and what the task derived from
    them (`extra`: the label space of a classifier...)."""

    train: list
    dev: list
    extra: dict = field(default_factory=dict)


@dataclass
class TrainingRun:
    """One training run as the generic loop sees it; the task's hooks read it and fill in `model`,
    `tokenizer`, `metric` and `greater_is_better` (from the task's defaults)."""

    task: "Task"
    family: Any  # a longdoc.families.base.Family
    source: str  # the checkpoint to start from (--model)
    data: TrainingData
    options: dict  # the task's and family's settings, as given (None: not given)
    output: Path
    work_dir: str  # a temporary folder for conversions and the Trainer's files
    device: str
    seed: int
    epochs: float
    learning_rate: float
    batch_size: int
    defaults: Any  # a longdoc.families.base.TrainingDefaults: the hyper-parameters not given
    metric: str = ""  # the dev score that picks the saved model
    greater_is_better: bool = True
    model: Any = None
    tokenizer: Any = None
    state: dict = field(default_factory=dict)  # what a task keeps between its hooks


@dataclass
class Stage:
    """One pass of the Trainer over the data: epochs of training, an evaluation on dev after each,
    the best saved by `SaveBest` (records say which stage they come from)."""

    name: str  # "training"; "head warm-up" / "fine-tuning" when a task trains in stages
    train_items: list
    dev_items: list
    collator: Callable
    compute_metrics: Callable  # (EvalPrediction) -> {metric: value}
    epochs: float
    learning_rate: float
    batch_size: int
    eval_batch_size: int | None = None
    warmup_ratio: float = 0.1  # share of the steps warming up
    weight_decay: float = 0.01
    arguments: dict = field(default_factory=dict)  # more TrainingArguments fields (bf16, logging_steps...)
    generation: dict | None = None  # seq2seq: the dev set is scored on generated text ({"num_beams", "max_length"})
    lengths: list[int] | None = None  # training batches group items of alike lengths (LengthGroupedSampler)
    optimizer: Callable | None = None  # model -> torch optimizer (default: the Trainer's AdamW)
    context: Callable | None = None  # () -> context manager around the stage (e.g. the encoder frozen)
    announce: str | None = None  # a log line before the stage starts
    after: Callable | None = None  # (save_best) -> None, once the stage is done (e.g. reload the best weights)


class Task:
    name: str
    aliases: tuple[str, ...] = ()
    description: str = ""  # one line for `longdoc train --help`
    head: str  # the head kind it asks of a family
    default_family: str
    primary_metric: str  # the dev score that picks the saved model (a task may choose another per run)
    greater_is_better: bool = True
    pipeline: str  # "module:Class" of its pipeline (a longdoc.pipelines.base.Pipeline)
    commands: dict[str, tuple[str, str]] = {}  # its own commands: name -> (help, description)

    # -- data ----------------------------------------------------------------------------------

    def read(self, path: str | os.PathLike, options: dict, require_targets: bool = True) -> list:
        """The examples of a data file, checked; a DataError naming the file and line otherwise."""
        raise NotImplementedError

    # -- training (hooks of longdoc.training.train) -------------------------------------------

    def check_installed(self) -> None:
        """Raise ImportError naming the extra to install when the task needs a package that is missing."""

    def resolve(self, train: str | os.PathLike, family: str | None, options: dict) -> "Task":
        """The task that trains on this data: itself, or another one the data asks for."""
        return self

    def check_options(self, family, options: dict) -> None:
        """Settings that cannot work with this task and family fail here, before anything is read."""

    def read_training_data(self, train, validation, options: dict) -> TrainingData:
        return TrainingData(self.read(train, options), self.read(validation, options))

    def check_data(self, family, source: str, data: TrainingData, options: dict) -> None:
        """Data problems found without a model (before one is built); none by default."""

    def defaults(self, family, options: dict):
        """The TrainingDefaults of this task on this family (epochs, learning rate, batch size...)."""
        raise NotImplementedError

    def build(self, run: TrainingRun) -> tuple[Any, Any]:
        """(model, tokenizer) to train: the family's `head` model, from the run's source."""
        return run.family.build(self.head, run.source, {**run.options, "work_dir": run.work_dir})

    def features(self, run: TrainingRun, examples: list, split: str) -> list:
        """The items the collator batches, one or more per example of `split` ("train" or "dev")."""
        raise NotImplementedError

    def collator(self, run: TrainingRun) -> Callable:
        raise NotImplementedError

    def compute_metrics(self, run: TrainingRun) -> Callable:
        """(EvalPrediction) -> {metric: number}, the primary metric among them."""
        raise NotImplementedError

    def stages(self, run: TrainingRun) -> list[Stage]:
        """The stages of training; by default one over the features of both splits."""
        return [Stage("training", self.features(run, run.data.train, "train"), self.features(run, run.data.dev, "dev"),
                      self.collator(run), self.compute_metrics(run), run.epochs, run.learning_rate, run.batch_size,
                      warmup_ratio=run.defaults.warmup_ratio, weight_decay=run.defaults.weight_decay)]

    def finish(self, run: TrainingRun, save_best) -> dict:
        """After the last stage, with a model saved: any last step (e.g. a probe fitted into the saved
        model); returns fields of the TrainingResult to replace (e.g. dev_metrics)."""
        return {}

    def describe_scores(self, record: dict, metric: str) -> str:
        """One epoch's dev scores in a log line: "dev macro-F1 0.8123, accuracy 0.9000"."""
        value = record.get(metric)
        return f"dev {metric} {value:.4f}" if isinstance(value, (int, float)) else f"dev {metric} -"

    # -- prediction ----------------------------------------------------------------------------

    def pipeline_class(self):
        module, _, name = self.pipeline.partition(":")
        return getattr(importlib.import_module(module), name)

    def load_pipeline(self, model_dir: str | os.PathLike, options: dict):
        """The pipeline of the model in `model_dir`, read as `options` (a command's arguments or settings) say."""
        return self.pipeline_class().from_pretrained(model_dir)

    def prediction_json(self, prediction, source: str) -> dict:
        """The JSON object `longdoc predict` prints for one input."""
        return {"document": source, **prediction.to_dict()}

    def run_evaluate(self, args, out) -> int:
        """`longdoc evaluate`: the metrics of `evaluate_file` as one JSON object."""
        out.print(json.dumps(self.evaluate_file(args.model_dir, args.data, vars(args))))
        return 0

    def evaluate_file(self, model_dir: str | os.PathLike, path: str | os.PathLike, options: dict) -> dict:
        """The metrics of the saved model in `model_dir` on the labelled file `path` (what `longdoc evaluate`
        prints); `options` are the command's or the training's settings (columns, windows...)."""
        raise ValueError(f"{self.name} models have no evaluation on a labelled file")

    # -- cross-validation (longdoc.training.cv) ------------------------------------------------

    def fold_labels(self, examples: list, options: dict) -> list[tuple[str, ...]] | None:
        """The labels of each example that folds are stratified by; None: plain folds."""
        return None

    def fold_groups(self, examples: list, options: dict) -> list[str] | None:
        """The group of each example when none is named (a group never crosses folds); None: no groups."""
        return None

    # -- serving (longdoc.serve: one HTTP endpoint per loaded model) ----------------------------
    # A task is served once it names its `serve_action` and implements `serve_predict`; the service builds the
    # request's JSON schema from `serve_fields`, batches requests of equal `serve_batch_key` under a token
    # budget (`serve_tokens`), and refuses a document the model cannot read whole (`serve_limit`).

    serve_action: str | None = None  # POST /v1/models/{name}/{serve_action}; None: its models are not served

    def serve_fields(self) -> list["RequestField"]:
        """The fields of a request body: the document (`text`) and the options of one prediction."""
        return [RequestField("text", str, description="the document", min_length=1)]

    def serve_load(self, model_dir: str | os.PathLike):
        """The pipeline that answers the requests to the model in `model_dir` (as the task's command loads it)."""
        return self.load_pipeline(model_dir, {})

    def serve_check(self, request: dict, described: dict) -> None:
        """Problems of a request its schema cannot see (a blank document, an option beyond what the model
        takes: `described` is what `serve_describe` said of it): a DataError saying which."""
        if not request["text"].strip():
            raise DataError("text is blank: give a document (it holds only white space)")

    def serve_tokens(self, tokenizer, request: dict) -> int:
        """The request's tokens (no special tokens): what the batch budget and the size limit count."""
        return len(tokenizer(request["text"], add_special_tokens=False, verbose=False)["input_ids"])

    def serve_limit(self, described: dict, request: dict, tokens: int) -> str | None:
        """Why the model cannot read this document whole (a message naming its limit), or None when it can;
        `described` is what `serve_describe` said of the model (its `max_document_tokens`, what it `reads`)."""
        most = described.get("max_document_tokens")
        if most is not None and tokens > most:
            return (f"the document is {tokens} tokens long and this model reads at most {most} "
                    f"({described.get('reads', 'its limit')}): send a shorter document")
        return None

    def serve_batch_key(self, request: dict) -> tuple:
        """The request's options that change the computation: only requests with equal keys share a batch."""
        return ()

    def serve_predict(self, pipeline, requests: list[dict]) -> list[dict]:
        """One JSON object per request, as the task's command prints it for that document less the file name;
        one pipeline call for all of them (they share a batch key)."""
        raise NotImplementedError(f"{self.name} models are not served")

    def serve_describe(self, pipeline) -> dict:
        """What `GET /v1/models` says of the model besides its name and task: labels, and the limit
        `serve_limit` enforces (`max_document_tokens`: the most tokens it reads whole, None: any; `reads`: how)."""
        return {}

    # -- command line --------------------------------------------------------------------------

    def add_arguments(self, command: str, parser) -> None:
        """Add this task's arguments to `command` (a shared one, or one of its own); use `add_option`,
        which leaves out a flag another task added already."""

    def command_task(self, args, out) -> "Task":
        """The task `longdoc train --task <this>` trains with these arguments: itself, or another one the
        data asks for (saying so through `out`)."""
        return self

    def training_options(self, args) -> dict:
        """The keyword arguments of `longdoc.training.train` that the parsed `train` arguments give."""
        return {}

    def training_summary(self, result) -> list[str]:
        """What `longdoc train` prints once a model is saved."""
        return [f"saved the best model ({result.best_when()}) to {result.output}"]

    def run(self, command: str, args, out) -> int:
        """Run `command` (evaluate, predict, or one of its own) for this task, writing through `out`
        (`out.print(text)`: the result, on stdout; `out.note(text)`: a remark, on stderr); the exit status."""
        raise ValueError(f"`longdoc {command}` does not apply to {self.name} models")


# --- the registry ----------------------------------------------------------------------------------

TASKS: dict[str, Task] = {}
ALIASES: dict[str, str] = {}


def without_key(record: dict, key: str) -> dict:
    """A prediction's JSON less one key (the file name a command prints, which a served request has not)."""
    return {name: value for name, value in record.items() if name != key}


def register_task(task: Task) -> Task:
    for name in (task.name, *task.aliases):
        if name in ALIASES and ALIASES[name] != task.name:
            raise ValueError(f"task name {name!r} is taken by task {ALIASES[name]!r}")
    TASKS[task.name] = task
    ALIASES.update({name: task.name for name in (task.name, *task.aliases)})
    return task


def task_names(with_aliases: bool = False) -> list[str]:
    return list(ALIASES) if with_aliases else list(TASKS)


def get_task(name: str) -> Task:
    """The task of this name or alias; a ValueError listing them for an unknown one."""
    if name not in ALIASES:
        known = "; ".join(f"{t.name}" + (f" (or {', '.join(t.aliases)})" if t.aliases else "") for t in TASKS.values())
        raise ValueError(f"unknown task {name!r}; the tasks are {known}")
    return TASKS[ALIASES[name]]


def task_for_head(head: str | None) -> Task | None:
    return next((task for task in TASKS.values() if task.head == head), None)


def task_for_model(model_dir: str | os.PathLike, default: str = "classification") -> Task:
    """The task whose models are like the one in `model_dir` (by the head its config.json names); the
    `default` task for a folder that holds none (its pipeline then says what is wrong)."""
    from ..families import head_of_config, read_model_config

    try:
        head = head_of_config(read_model_config(model_dir))
    except DataError:
        head = None
    return task_for_head(head) or get_task(default)


# --- helpers for task modules ----------------------------------------------------------------------


def add_option(parser, *flags: str, **settings) -> None:
    """parser.add_argument, unless another task added the flag already (commands are shared)."""
    if not any(flag in parser._option_string_actions for flag in flags):
        parser.add_argument(*flags, **settings)


def iter_documents(files: list[str], text_column: str) -> Iterator[tuple[str, str]]:
    """(source, text) of every document: a .jsonl/.csv file gives one per line, any other file is one."""
    from ..data.documents import read_documents

    for name in files:
        if is_record_file(name):
            for document in read_documents(name, text_column, require_labels=False):
                yield document.id or document.source, document.text
        else:
            yield name, read_text(name)


def is_record_file(name: str) -> bool:
    """A file of one document (or example) per line, rather than one document."""
    return name.endswith((".jsonl", ".json", ".csv", ".tsv"))


def read_text(name: str) -> str:
    """The text of a plain file that is one document."""
    try:
        text = open(name, encoding="utf-8", errors="replace").read()
    except OSError as error:
        raise DataError(f"{name}: cannot read ({error.strerror})") from None
    if not text.strip():
        raise DataError(f"{name}: empty document")
    return text


def check_positive(**values) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
