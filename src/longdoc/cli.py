"""`longdoc` console script: parses arguments and calls library functions, nothing more.

Each subcommand is one `add_<name>_command(subparsers)` function that declares its arguments
and sets `run` to the function doing the work; new subcommands (train, evaluate, serve...)
are added to SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import sys


def add_convert_command(subparsers) -> None:
    from .convert import available_targets, supported_model_types

    parser = subparsers.add_parser(
        "convert",
        help="turn a short pretrained checkpoint into a long-document model",
        description=(
            "Convert a short checkpoint (" + ", ".join(supported_model_types()) + ") into a long model, "
            "save it with its tokenizer, and verify that it reproduces the source on short inputs."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="source checkpoint folder (or hub id)")
    parser.add_argument("out", metavar="OUT", help="folder to write the long model to")
    parser.add_argument("--to", default="longformer", choices=available_targets(), help="long-model family")
    parser.add_argument("--max-length", type=int, default=4096, metavar="N", help="tokens the long model takes")
    parser.add_argument("--window", type=int, default=512, metavar="W", help="full attention window (even)")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip the source comparison")
    parser.set_defaults(run=run_convert)


def run_convert(args) -> int:
    from .convert import convert

    print(f"converting {args.src} -> {args.to} ({args.max_length} tokens, window {args.window}) ...", flush=True)
    report = convert(
        args.src, args.out, to=args.to, max_length=args.max_length, window=args.window, verify=args.verify
    )
    print(report)
    return 0


SUBCOMMANDS = (add_convert_command,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longdoc", description="Transformers over long documents.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in SUBCOMMANDS:
        add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own lines say what happens
    from .convert import VerificationError

    try:
        return args.run(args)
    except (ValueError, VerificationError) as error:
        print(f"longdoc {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
