"""What a hyper-parameter search varies: the parameters it knows, a default space per (task, family,
frozen encoder), and a small YAML file that overrides it.

    learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}   # a float range (log-uniform)
    epochs: {low: 10, high: 60}                            # a whole-number range
    batch_size: {choices: [8, 16, 32]}                     # one of these
    weight_decay: 0.01                                     # fixed: not searched
    aggregator_dropout: null                               # left out: the task's default

Entries replace the default space's of the same name; the rest of it stays. This module imports
neither torch nor optuna: a space file is checked before anything heavy is loaded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

# name -> (value type, where the value goes: "train" a keyword of `train`, "loop" a loop setting,
# "config" a model config field (config_overrides), (lowest, highest allowed, highest included?))
PARAMETERS = {
    "learning_rate": (float, "train", (0, None, False)),
    "epochs": (int, "train", (1, None, True)),
    "batch_size": (int, "train", (1, None, True)),
    "weight_decay": (float, "loop", (0, None, True)),
    "warmup_ratio": (float, "loop", (0, 1, False)),
    "gradient_accumulation_steps": (int, "loop", (1, None, True)),
    "aggregator_layers": (int, "config", (1, None, True)),
    "aggregator_dropout": (float, "config", (0, 1, False)),
    "classifier_dropout": (float, "config", (0, 1, False)),
}
SEGMENT_FAMILIES = ("segment", "chunk-pool", "truncate")  # the config fields above are theirs
AGGREGATOR_FAMILIES = ("segment",)  # chunk-pool and truncate have no segment Transformer
SPEC_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Parameter:
    """One searched hyper-parameter: a range (`low`..`high`, log-uniform if `log`) or `choices`."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    @property
    def kind(self) -> type:
        return PARAMETERS[self.name][0]

    def suggest(self, trial):
        """The value an Optuna trial draws for this parameter."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def contains(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(f"{c:g}" for c in self.choices)
        return f"{self.low:g} to {self.high:g}" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class SearchSpace:
    parameters: dict[str, Parameter]  # searched
    fixed: dict[str, float]  # set by the space file, not searched

    def split(self, values: dict) -> tuple[dict, dict, dict]:
        """(train keywords, loop settings, config overrides) of a trial's values."""
        parts = {"train": {}, "loop": {}, "config": {}}
        for name, value in values.items():
            parts[PARAMETERS[name][1]][name] = value
        return parts["train"], parts["loop"], parts["config"]


def default_space(task: str, family: str, frozen: bool, defaults) -> dict[str, Parameter]:
    """The space searched when no file says otherwise, around the task's `defaults` on this family
    (TrainingDefaults): see the table in docs/search.md."""
    rate = defaults.learning_rate
    if frozen:  # layers above cached vectors: seconds per trial, a wide range is cheap
        space = [Parameter("learning_rate", rate / 10, rate * 10, log=True),
                 Parameter("epochs", max(1, defaults.epochs // 4), defaults.epochs * 3 // 2),
                 Parameter("batch_size", choices=(8, 16, 32)),
                 Parameter("weight_decay", 0.0, 0.1),
                 Parameter("warmup_ratio", 0.0, 0.2)]
    else:
        low, high = {"summarization": (1e-5, 3e-4)}.get(task, (1e-5, 1e-4))
        batch_sizes = {"question-answering": (1, 2, 4)}.get(task, (2, 4, 8))
        space = [Parameter("learning_rate", low, high, log=True),
                 Parameter("epochs", 1, max(2, defaults.epochs + 2)),
                 Parameter("batch_size", choices=batch_sizes),
                 Parameter("weight_decay", 0.0, 0.1),
                 Parameter("warmup_ratio", 0.0, 0.2)]
    if family in SEGMENT_FAMILIES and task == "classification":
        space.append(Parameter("classifier_dropout", 0.0, 0.3))
        if family in AGGREGATOR_FAMILIES:
            space += [Parameter("aggregator_layers", 1, 2), Parameter("aggregator_dropout", 0.0, 0.3)]
    return {p.name: p for p in space}


def default_values(defaults, family: str) -> dict:
    """What a training without a search uses for each known parameter (the defaults trial)."""
    values = {"learning_rate": defaults.learning_rate, "epochs": defaults.epochs, "batch_size": defaults.batch_size,
              "weight_decay": defaults.weight_decay, "warmup_ratio": defaults.warmup_ratio,
              "gradient_accumulation_steps": 1}
    if family in SEGMENT_FAMILIES:  # SegmentClassifierConfig's defaults
        values.update(aggregator_layers=1, aggregator_dropout=0.1, classifier_dropout=0.1)
    return values


def read_space_file(path: str | os.PathLike) -> dict:
    """The entries of a YAML space file (name -> spec, scalar or None); a ValueError naming the file otherwise."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            entries = yaml.safe_load(handle)
    except OSError as error:
        raise ValueError(f"--space {path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"--space {path}: not valid YAML ({error})") from None
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ValueError(f"--space {path}: give a mapping of parameter names to ranges, e.g. "
                         f"'learning_rate: {{low: 1.0e-5, high: 1.0e-3, log: true}}'")
    return entries


def build_space(base: dict[str, Parameter], entries: dict, source: str = "the search space",
                family: str | None = None) -> SearchSpace:
    """`base` with the space file's `entries` over it; a ValueError naming every bad entry."""
    unknown = [name for name in entries if name not in PARAMETERS]
    if unknown:
        raise ValueError(f"{source}: unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))}; "
                         f"the known ones are {', '.join(PARAMETERS)}")
    if family is not None:
        foreign = [n for n in entries if PARAMETERS[n][1] == "config" and entries[n] is not None
                   and (family not in SEGMENT_FAMILIES or (n.startswith("aggregator") and
                                                          family not in AGGREGATOR_FAMILIES))]
        if foreign:
            raise ValueError(f"{source}: {', '.join(foreign)} are model settings that --family {family} does not have")
    parameters, fixed, problems = dict(base), {}, []
    for name, spec in entries.items():
        parameters.pop(name, None)
        if spec is None:
            continue
        try:
            if isinstance(spec, dict):
                parameters[name] = parse_parameter(name, spec)
            else:
                fixed[name] = check_value(name, number(spec, name))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return SearchSpace(parameters, fixed)


def parse_parameter(name: str, spec: dict) -> Parameter:
    kind = PARAMETERS[name][0]
    extra = set(spec) - SPEC_KEYS
    if extra:
        raise ValueError(f"{name}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(sorted(map(str, extra)))} "
                         f"(a range is {{low, high, log, step}}, a list {{choices}})")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise ValueError(f"{name}: give either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{name}: choices must be a non-empty list")
        return Parameter(name, choices=tuple(check_value(name, number(c, name)) for c in choices))
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"{name}: give low and high (or choices)")
    low, high = check_value(name, number(spec["low"], name)), check_value(name, number(spec["high"], name))
    if low >= high:
        raise ValueError(f"{name}: low ({low:g}) must be below high ({high:g})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{name}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ValueError(f"{name}: a log range needs low above 0, got {low:g}")
    step = spec.get("step")
    if step is not None:
        step = number(step, name)
        if step <= 0 or (kind is int and step != int(step)):
            raise ValueError(f"{name}: step must be a positive {'whole number' if kind is int else 'number'}")
        if log:
            raise ValueError(f"{name}: give log or step, not both")
    return Parameter(name, low, high, log=log, step=step)


def number(value, name: str) -> float | int:
    """A YAML number; also a string like '1e-5' (YAML 1.1 reads exponents without a dot as text)."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    return value


def check_value(name: str, value: float) -> float | int:
    """`value` as the parameter's type, inside the values the parameter can take."""
    kind, _, (lowest, highest, highest_included) = PARAMETERS[name]
    if kind is int:
        if value != int(value):
            raise ValueError(f"{name}: takes whole numbers, got {value:g}")
        value = int(value)
    else:
        value = float(value)
    too_high = highest is not None and (value > highest or (value == highest and not highest_included))
    if value < lowest or too_high or (name == "learning_rate" and value <= 0):
        limits = (f"from {lowest:g}" + (f" to {'' if highest_included else 'below '}{highest:g}" if highest is not None
                                          else "") if name != "learning_rate" else "above 0")
        raise ValueError(f"{name}: {value:g} is out of range ({limits})")
    return value
