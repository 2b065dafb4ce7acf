"""The models a service answers with: each a saved model folder, its task and its pipeline, under a name.

    models = load_served_models(["reviews=runs/reviews", "runs/faq-reader"])   # names: reviews, faq-reader
    models["reviews"].predict_batch([{"text": "...", "explain": False, ...}])  # one JSON per request

Everything a task knows about serving comes from its hooks (`Task.serve_*`, tasks/base.py): the request's
fields, the options that keep requests apart, how tokens are counted, the model's limits and the JSON of a
prediction. A new task is served once it implements them.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..tasks import task_for_model
from ..tasks.base import Task

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # one URL path segment


@dataclass
class ServedModel:
    name: str
    model_dir: str
    task: Task
    pipeline: object
    action: str
    runtime: str
    details: dict = field(default=None, repr=False)  # the task's serve_describe: labels, limits
    _counter: object = field(default=None, repr=False)  # a tokenizer of its own for counting (see count_tokens)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        if self.details is None:
            self.details = self.task.serve_describe(self.pipeline)

    @property
    def endpoint(self) -> str:
        return f"/v1/models/{self.name}/{self.action}"

    def describe(self) -> dict:
        """What GET /v1/models lists of this model."""
        family = getattr(getattr(self.pipeline, "family", None), "name", None)
        return {"name": self.name, "task": self.task.name, "action": self.action, "endpoint": self.endpoint,
                "family": family, "head": self.task.head, "runtime": self.runtime, **self.details}

    def check(self, request: dict) -> None:
        """A DataError for what the request's schema cannot catch (a blank document...)."""
        self.task.serve_check(request, self.details)

    def count_tokens(self, request: dict) -> int:
        """The request's tokens. A fast tokenizer fails ("Already borrowed") when two threads use it while one
        changes its truncation, as the pipeline's calls do: counting (request threads) has a copy of its own."""
        with self._lock:
            if self._counter is None:
                self._counter = own_tokenizer(self.model_dir, self.pipeline)
            return self.task.serve_tokens(self._counter, request)

    def refusal(self, request: dict, tokens: int) -> str | None:
        """Why the model cannot read this request's document whole (413), or None."""
        return self.task.serve_limit(self.details, request, tokens)

    def batch_key(self, request: dict) -> tuple:
        """Requests with equal keys may share a forward pass: same model, same options that change it."""
        return (self.name, *self.task.serve_batch_key(request))

    def predict_batch(self, requests: list[dict]) -> list[dict]:
        """One JSON object per request (the task's command's output for that document, less the file name);
        one pipeline call for all when they share their options (TokenBudgetBatcher's batches do), else one per
        group of equal options. Synchronous: the service runs it in its worker thread."""
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(self.task.serve_batch_key(request), []).append(index)
        results: list = [None] * len(requests)
        for indices in groups.values():
            answers = self.task.serve_predict(self.pipeline, [requests[i] for i in indices])
            if len(answers) != len(indices):
                raise RuntimeError(f"{self.task.name}.serve_predict returned {len(answers)} results for "
                                   f"{len(indices)} requests")
            for index, answer in zip(indices, answers):
                results[index] = answer
        return results


def own_tokenizer(model_dir: str, pipeline):
    """A tokenizer object not shared with the pipeline: read again from the folder, else a deep copy."""
    import copy

    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError):
        return copy.deepcopy(pipeline.tokenizer)


def parse_model_specs(specs: list[str]) -> list[tuple[str, str]]:
    """(name, folder) of each "NAME=DIR" or "DIR" (named by the folder's base name); a ValueError for a
    name that is no URL path segment or that two models share."""
    parsed = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or os.path.exists(spec):  # a folder whose name holds "=" is a folder
            name, folder = Path(spec.rstrip("/\\") or spec).name, spec
        if not folder:
            raise ValueError(f"model {spec!r}: give the folder after the name, NAME=DIR")
        if not NAME_PATTERN.match(name):
            raise ValueError(f"model name {name!r} (from {spec!r}) cannot be part of a URL: use letters, digits, '.', "
                             f"'_' and '-' (at most 100), e.g. mymodel={folder}")
        parsed.append((name, folder))
    seen: dict[str, str] = {}
    for name, folder in parsed:
        if name in seen:
            raise ValueError(f"two models are named {name!r} ({seen[name]} and {folder}): name them apart with "
                             f"NAME=DIR, e.g. {name}-2={folder}")
        seen[name] = folder
    return parsed


def load_served_models(specs: list[str], runtime: str = "torch") -> dict[str, ServedModel]:
    """name -> ServedModel of every "NAME=DIR" or "DIR"; each folder's task is read from its config.json.
    `runtime` "onnx" loads each through longdoc.export.load_onnx_pipeline (a folder `longdoc export` wrote)."""
    if runtime not in ("torch", "onnx"):
        raise ValueError(f"runtime {runtime!r}: use torch or onnx")
    models = {}
    for name, folder in parse_model_specs(specs):
        if not Path(folder).is_dir():
            raise DataError(f"{folder}: no such model folder (give folders that `longdoc train` or `longdoc export` "
                            f"wrote)")
        task = task_for_model(folder)
        if task.serve_action is None:
            raise ValueError(f"{folder}: {task.name} models cannot be served yet")
        if runtime == "onnx":
            from ..export import load_onnx_pipeline

            pipeline = load_onnx_pipeline(folder)
        else:
            pipeline = task.serve_load(folder)
        models[name] = ServedModel(name, str(folder), task, pipeline, task.serve_action, runtime)
    return models
