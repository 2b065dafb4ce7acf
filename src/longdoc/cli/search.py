"""`longdoc search`: a hyper-parameter search (Optuna) over `longdoc train`'s arguments; prints one
JSON object (best value and parameters, trials done, where the model and report are). Building the
parser imports neither torch nor optuna."""

from __future__ import annotations

import json

from .tasks import ConsoleOutput, add_training_arguments, training_call


def add_search_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "search", help="search the training hyper-parameters (Optuna), keeping the best model",
        description="Run --trials trainings with hyper-parameters drawn by Optuna's TPE sampler (the first one: the "
        "task's defaults), stopping trials whose dev score falls below the median of earlier ones after an epoch. "
        "--output gets the best trial's model (model/), the report (trials.md, search.json, history.png, "
        "importances.png) and, by default, the study (study.db: run the same command again to resume). Processes "
        "given one --storage URL and --study name share the search. Hyper-parameters given as flags are fixed; "
        "--space FILE (YAML) changes the searched ranges; see docs/search.md.",
    )
    add_training_arguments(parser)
    search = parser.add_argument_group("search")
    search.add_argument("--trials", type=int, default=30, metavar="N",
                        help="finished (complete or pruned) trials the study should hold; a resumed search runs "
                        "the rest (default 30)")
    search.add_argument("--storage", metavar="URL", help="Optuna RDB storage URL: sqlite:///path.db, "
                        "postgresql+psycopg2://user:password@host/db, mysql+pymysql://... (default: sqlite:///"
                        "OUTPUT/study.db)")
    search.add_argument("--study", metavar="NAME", help="study name in the storage (default longdoc-search)")
    search.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    search.add_argument("--space", metavar="FILE", help="YAML file of parameter ranges over the default space")
    parser.set_defaults(run=run_search)


def run_search(args) -> int:
    out = ConsoleOutput()
    try:
        from ..training.search import search
    except ImportError as error:
        out.note(f"longdoc search: error: {error}")
        return 1
    task, options = training_call(args, out)
    try:
        summary = search(task.name, args.train, args.validation, args.output, trials=args.trials,
                         storage=args.storage, study_name=args.study, timeout=args.timeout, space=args.space,
                         **options)
    except ImportError as error:
        out.note(f"longdoc search: error: {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    out.print(json.dumps(summary))
    return 0
