"""`longdoc` console script: parses arguments and calls library functions, nothing more.

The commands: `convert` (cli/convert.py), the ones every task takes part in (`train`, `evaluate`,
`predict`) and each task's own (`summarize`), built from the task registry (cli/tasks.py).
Building the parser imports no torch: `longdoc --help` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from ..tasks.classification import format_explanation  # noqa: F401  (the demo prints explanations with it)
from .convert import add_convert_command
from .cv import add_cv_command
from .export import add_export_command
from .search import add_search_command
from .serve import add_serve_command
from .tasks import add_evaluate_command, add_predict_command, add_task_commands, add_train_command

SUBCOMMANDS = (add_convert_command, add_train_command, add_evaluate_command, add_predict_command, add_task_commands,
               add_cv_command, add_search_command, add_serve_command, add_export_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longdoc", description="Transformers over long documents.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in SUBCOMMANDS:
        add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    args.command_line = sys.argv[1:] if argv is None else list(argv)  # what --nproc-per-node starts again
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own lines say what happens
    from ..errors import DataError, VerificationError
    from ..logs import show_progress

    show_progress()  # the library's progress lines (training epochs...) on stderr
    try:
        return args.run(args)
    except (ValueError, VerificationError, DataError) as error:
        print(f"longdoc {args.command}: error: {error}", file=sys.stderr)
        return 1
