"""Hyper-parameter search over `train`, with Optuna: every trial is one `train` call, which builds
its model fresh from the checkpoint (that call is the search's model_init), so no trial inherits
another's weights.

    from longdoc.training.search import search
    summary = search("classification", "train.jsonl", "dev.jsonl", "search-out", trials=30,
                     model="path/to/encoder", freeze_encoder=True)

A TPE sampler draws the trials; a median pruner stops a trial whose dev score after an epoch is
below the median of earlier trials at that epoch (SaveBest's `on_evaluation` hook reports each
epoch). The study lives in an Optuna RDB storage (default: SQLite `<output>/study.db`): a stopped
search resumes, and processes sharing one storage URL run one search in parallel. The first trial
of a new study is the task's default hyper-parameters, so the report compares against them. The
best trial's model is kept in `<output>/model`; the report is `trials.md`, `search.json`,
`history.png` and `importances.png` (search_report.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from .search_space import PARAMETERS, SearchSpace, build_space, default_space, default_values, read_space_file

logger = logging.getLogger(__name__)

FINISHED = ("COMPLETE", "PRUNED")  # the states that count towards --trials (a failed trial is run again)
TRIAL_RECORD = "search_trial.json"  # in <output>/model: which trial the model is
DEFAULTS_MODEL = "defaults-model"  # <output>/defaults-model: the defaults trial's model
QUIET_DURING_TRIALS = ("longdoc.training.save_best", "longdoc.training.train", "longdoc.tasks")  # per-epoch lines


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("the hyper-parameter search needs optuna: pip install 'longdoc[tune]'") from None
    return optuna


def search(
    task: str,
    train: str | os.PathLike,
    validation: str | os.PathLike,
    output: str | os.PathLike,
    trials: int = 30,
    storage: str | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
    space: str | os.PathLike | dict | None = None,
    model: str | os.PathLike | None = None,
    family: str | None = None,
    seed: int = 42,
    **options,
) -> dict:
    """Search the hyper-parameters of a `task` model until the study holds `trials` finished (complete
    or pruned) trials, or `timeout` seconds pass; keep the best model in `output`/model and write the
    report there. `space`: a YAML file (or its dict) over the default space; hyper-parameters given
    in `options` (learning_rate=..., config_overrides keys) are fixed, not searched. Returns a summary
    (best value and parameters, trials done, where the model and report are)."""
    optuna = require_optuna()
    from ..families import get_family
    from ..tasks import get_task

    if model is None:
        raise ValueError("give the checkpoint to start from: model='path/to/checkpoint' (--model)")
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"--trials must be a positive whole number, got {trials}")
    options = {k: v for k, v in options.items() if v is not None}
    chosen = get_task(task).resolve(train, family, options)
    family_name = family or chosen.default_family
    handler = get_family(family_name)
    frozen = bool(options.get("freeze_encoder"))
    defaults = chosen.defaults(handler, options)
    space = search_space(chosen.name, family_name, frozen, defaults, space, options)
    metric, direction = chosen.primary_metric, "maximize" if chosen.greater_is_better else "minimize"
    output = Path(output)
    check_search_output(output)
    output.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(output / 'study.db').resolve()}"
    described = {"task": chosen.name, "family": family_name, "frozen": frozen, "metric": metric}
    study = open_study(optuna, url, study_name or "longdoc-search", direction, described, seed,
                       mix_pid=storage is not None, frozen=frozen)
    defaults_note = enqueue_defaults(study, space, default_values(defaults, family_name))

    fixed = {**space.fixed, **{n: options.pop(n) for n in list(options) if n in PARAMETERS}}
    objective = Objective(chosen.name, train, validation, output, model, family_name, seed, options, space, fixed,
                          metric, direction)
    finished = count_finished(study)
    logger.info("search: %d of %d trials finished in study %r (%s); dev %s, %s", finished, trials, study.study_name,
                masked(url), metric, "; ".join(f"{n} {p.describe()}" for n, p in space.parameters.items()))
    start = time.perf_counter()
    try:
        if finished < trials:
            with quiet_loggers(QUIET_DURING_TRIALS):
                study.optimize(objective, n_trials=trials - finished, timeout=timeout, catch=(RuntimeError,),
                               callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished_states(optuna)),
                                          log_trial])
    finally:  # a stopped search still reports what it did
        from .search_report import write_report

        record = output / "model" / TRIAL_RECORD
        kept = json.loads(record.read_text()) if record.is_file() else None
        summary = write_report(study, output, masked(url), metric, direction, described, defaults_note, kept,
                               seconds=time.perf_counter() - start)
    return summary


def search_space(task: str, family: str, frozen: bool, defaults, space, options: dict) -> SearchSpace:
    """The default space with the file's entries over it, less what `options` fix."""
    if isinstance(space, dict):
        entries, source = space, "the search space"
    elif space is not None:
        entries, source = read_space_file(space), f"--space {space}"
    else:
        entries, source = {}, "the search space"
    result = build_space(default_space(task, family, frozen, defaults), entries, source, family)
    given = {n for n in PARAMETERS if options.get(n) is not None} | set(options.get("config_overrides") or {})
    searched = {n: p for n, p in result.parameters.items() if n not in given}
    if not searched:
        raise ValueError(f"{source}: nothing is left to search (every parameter is fixed or left out)")
    return SearchSpace(searched, result.fixed)


def check_search_output(output: Path) -> None:
    """A new or empty folder, or one of an earlier search (to resume); anything else is refused."""
    from .train import check_output_folder

    ours = ("study.db", "study.db.lock", "search.json", "trials.md", "history.png", "importances.png", "model",
            DEFAULTS_MODEL)
    check_output_folder(output, "the search", "a search's",
                        lambda folder: all(p.name in ours or p.name.startswith(".") for p in folder.iterdir()),
                        hint=" (or the folder of a search to resume)")


def open_study(optuna, url: str, name: str, direction: str, described: dict, seed: int, mix_pid: bool, frozen: bool):
    """The study `name` in the storage at `url`, created when new; a ValueError when the storage cannot be
    opened or the study there is another search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # log_trial says one line per trial
    with storage_lock(url):  # processes creating one SQLite file's tables at once would clash
        try:
            engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
            with warnings.catch_warnings():  # the heartbeat (a killed process's trial marked failed) is "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=60,
                                                     grace_period=180)
            study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                        pruner=pruner(optuna, frozen))
        except Exception as error:  # noqa: BLE001 - any failure to open the storage is told the same way
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            driver = ("; PostgreSQL and MySQL URLs need their driver installed (psycopg2, pymysql: "
                      "postgresql+psycopg2://..., mysql+pymysql://...)" if not url.startswith("sqlite") else "")
            raise ValueError(f"cannot open the study storage {masked(url)}: {type(error).__name__}: {reason}{driver}") \
                from None
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", described)
    elif stored != described:
        raise ValueError(f"study {name!r} in {masked(url)} is a search of {stored}, not of {described}; give another "
                         f"--study name")
    if study.direction.name.lower() != direction:
        raise ValueError(f"study {name!r} in {masked(url)} is to {study.direction.name.lower()}; give another --study")
    # TPE draws from a seed: the trials already there make a resumed search draw new points, and the process
    # id keeps processes sharing a storage from drawing the same ones (a search alone stays reproducible)
    sampler_seed = seed + len(study.trials) + (os.getpid() if mix_pid else 0)
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed % 2**32, n_startup_trials=8, constant_liar=True)
    return study


def pruner(optuna, frozen: bool):
    """Median pruning once 5 trials are done; a frozen encoder's head is not judged in its first 10
    epochs (its scores move a lot early, and a trial costs seconds), a fine-tuned model from its second."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10 if frozen else 1)


@contextlib.contextmanager
def storage_lock(url: str):
    """An exclusive lock beside a local SQLite file while it is opened; nothing for other databases."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        yield
        return
    path = Path(url[len(prefix):])
    if not path.parent.is_dir():
        raise ValueError(f"cannot open the study storage {url}: the folder {path.parent} does not exist")
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def masked(url: str) -> str:
    """The URL with any password hidden (it goes into logs and reports)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def enqueue_defaults(study, space: SearchSpace, values: dict) -> str | None:
    """Queue the defaults as a trial (once per study: processes starting together queue it once); a
    note saying why not where they lie outside the space."""
    values = {n: values[n] for n in space.parameters if n in values}
    outside = [f"{n}={v:g}" for n, v in values.items() if not space.parameters[n].contains(v)]
    if outside:
        return f"the defaults lie outside the space ({', '.join(outside)}): no defaults trial"
    if len(values) < len(space.parameters):
        return "the space has parameters without a default: no defaults trial"
    if not any(t.user_attrs.get("defaults") for t in study.trials):
        study.enqueue_trial(values, user_attrs={"defaults": True}, skip_if_exists=True)
    return None


def finished_states(optuna) -> tuple:
    return tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)


def count_finished(study) -> int:
    return sum(1 for t in study.trials if t.state.name in FINISHED)


# stages a trial's values do not drive: fine-tuning a classifier first warms its head up with the family's
# fixed warm-up settings, and its 40 evaluations must not prune a trial before its own learning rate has run
UNTUNED_STAGES = ("head warm-up",)


class PruningReporter:
    """SaveBest's `on_evaluation` hook: each dev evaluation's `metric` reported to the trial as the next
    step (evaluations of UNTUNED_STAGES left out); answers True (stop training) when the pruner says the
    trial is worse than the others."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric
        self.step = 0
        self.last: float | None = None  # the last value reported
        self.pruned = False

    def __call__(self, record: dict) -> bool:
        if record.get("stage") in UNTUNED_STAGES:
            return False  # its settings are fixed, not the trial's: its scores say nothing of the trial's values
        value = record.get(self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        self.last = float(value)
        self.trial.report(self.last, self.step)
        self.step += 1
        self.pruned = bool(self.trial.should_prune())  # numpy's bool from the pruner
        return self.pruned


class Objective:
    """One trial: its values drawn from the space, one `train` run into a temporary folder, the dev
    primary metric returned; the model kept in `<output>/model` when it is the best so far."""

    def __init__(self, task, train_file, dev_file, output, model, family, seed, options, space, fixed, metric,
                 direction):
        self.task, self.train_file, self.dev_file, self.output = task, train_file, dev_file, Path(output)
        self.model, self.family, self.seed, self.options = model, family, seed, options
        self.space, self.fixed, self.metric, self.direction = space, fixed, metric, direction

    def __call__(self, trial) -> float:
        import optuna

        from .train import train

        values = {**self.fixed, **{n: p.suggest(trial) for n, p in self.space.parameters.items()}}
        train_values, loop_values, config_values = self.space.split(values)
        config = {**(self.options.get("config_overrides") or {}), **config_values}
        reporter = PruningReporter(trial, self.metric)
        options = {**self.options, **loop_values, "checkpoints": False, "on_evaluation": reporter}
        if config:
            options["config_overrides"] = config
        with tempfile.TemporaryDirectory(prefix=f"longdoc-trial-{trial.number}-") as folder:
            trial_model = Path(folder) / "model"
            result = train(self.task, self.train_file, self.dev_file, trial_model, model=self.model,
                           family=self.family, seed=self.seed, **train_values, **options)
            if reporter.pruned:
                raise optuna.TrialPruned(f"dev {self.metric} {reporter.last:.4f} after evaluation {reporter.step}")
            value = result.dev_metrics.get(self.metric)
            trial.set_user_attr("best_epoch", result.best_epoch)
            if result.probe is not None:  # frozen segment classifier: how much of the score is the linear probe's
                trial.set_user_attr("probe_weight", result.probe.get("probe_weight"))
            trial.set_user_attr("dev_metrics", {k: v for k, v in result.dev_metrics.items()
                                                if isinstance(v, (int, float))})
            if value is None:
                logger.warning("trial %d: no dev %s (no model was saved)", trial.number, self.metric)
                return float("nan")  # Optuna records the trial as failed
            self.keep_if_best(trial, float(value), values, trial_model)
            if trial.user_attrs.get("defaults"):  # kept beside the best, to compare them on other data
                self.keep(trial, float(value), values, trial_model, self.output / DEFAULTS_MODEL)
        return float(value)

    def keep_if_best(self, trial, value: float, values: dict, trial_model: Path) -> None:
        """Copy the trial's model into `<output>/model` when it beats the model there (under a lock: processes
        sharing the output folder finish trials at once)."""
        target = self.output / "model"
        with open(self.output / ".model.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = target / TRIAL_RECORD
            kept = json.loads(record.read_text()) if record.is_file() else None
            if kept is not None and kept.get("study") == trial.study.study_name and not self.better(value, kept["value"]):
                return
            self.keep(trial, value, values, trial_model, target)

    def keep(self, trial, value: float, values: dict, trial_model: Path, target: Path) -> None:
        """Copy the trial's model to `target`, replacing what is there as a whole, with its trial record."""
        from .save_best import _swap_in, signals_held

        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=self.output))
        try:
            shutil.copytree(trial_model, staging, dirs_exist_ok=True)
            os.chmod(staging, 0o755)  # mkdtemp's folders are private; a model folder is not
            (staging / TRIAL_RECORD).write_text(json.dumps(
                {"study": trial.study.study_name, "trial": trial.number, "value": value, "metric": self.metric,
                 "params": values}, indent=1))
            with signals_held():
                _swap_in(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def better(self, value: float, than: float) -> bool:
        return value > than if self.direction == "maximize" else value < than


def log_trial(study, trial) -> None:
    """One line per finished trial (the search's progress)."""
    params = ", ".join(f"{n} {v:.3g}" if isinstance(v, float) else f"{n} {v}" for n, v in trial.params.items())
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0
    if trial.state.name == "COMPLETE":
        outcome = f"{trial.value:.4f}"
    elif trial.state.name == "PRUNED":
        last = trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else float("nan")
        outcome = f"pruned at evaluation {len(trial.intermediate_values)} ({last:.4f})"
    else:
        outcome = trial.state.name.lower()
    try:
        best = f"; best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = ""
    defaults = " (the defaults)" if trial.user_attrs.get("defaults") else ""
    logger.info("trial %d%s: %s in %.0f s [%s]%s", trial.number, defaults, outcome, seconds, params, best)


@contextlib.contextmanager
def quiet_loggers(names: tuple[str, ...]):
    """Raise these loggers to WARNING for the block (a trial's per-epoch lines would drown the trial lines)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
