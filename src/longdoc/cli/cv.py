"""`longdoc cv`: K-fold cross-validation of a training recipe (longdoc.training.cv), one JSON object
on stdout. Building the parser imports no torch."""

from __future__ import annotations

import json

from .tasks import ConsoleOutput, add_training_arguments, training_call


def add_cv_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "cv", help="K-fold cross-validation: mean, std and 95%% confidence interval of every metric over folds",
        description="Deal the documents of --data into --folds folds (stratified by label; iterative stratification "
        "for multi-label; whole groups with --group-column, and by context for question answering), train on all "
        "folds but one (an inner dev split of them picks the best epoch) and score on the one left out, for each "
        "fold. Prints one JSON object: every metric's mean, standard deviation and 95%% confidence interval over "
        "folds, and the per-fold results; writes folds.json, fold-k/{train,dev,test}.jsonl, cv.json, cv.md and "
        "cv.png to --output. A frozen encoder (--freeze-encoder) encodes every document once: later folds read "
        "the cached segment vectors.",
    )
    parser.add_argument("--data", required=True, metavar="FILE", help="all the labelled documents (.jsonl or .csv)")
    parser.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default 5)")
    parser.add_argument("--group-column", metavar="NAME", help="field naming each document's group: documents of "
                        "one group never cross folds (e.g. near-duplicates, one author, one source)")
    parser.add_argument("--dev-share", type=float, default=0.2, metavar="X",
                        help="share of each fold's training documents kept as its dev set (default 0.2)")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the folds, reports and fold models")
    parser.add_argument("--keep-models", action="store_true",
                        help="keep each fold's trained model (fold-k/model); by default it is deleted once scored")
    add_training_arguments(parser, data_files=False)
    parser.set_defaults(run=run_cv)


def run_cv(args) -> int:
    from ..training.cv import cross_validate

    out = ConsoleOutput()
    args.train = args.data  # what a task's command_task reads (sentence lists train the sentence task)
    task, options = training_call(args, out)
    try:
        summary = cross_validate(task.name, args.data, args.output, folds=args.folds, group_column=args.group_column,
                                 dev_share=args.dev_share, keep_models=args.keep_models, **options)
    except KeyboardInterrupt:
        return 130
    out.print(json.dumps(summary))
    return 0
