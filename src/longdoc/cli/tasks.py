"""The commands every task takes part in (`train`, `evaluate`, `predict`) and the tasks' own commands
(`summarize`...), all built from the task registry: each task adds its arguments, and a command
runs through the task it is about (`--task` for train, the model folder's kind otherwise)."""

from __future__ import annotations

import sys

from ..families import FAMILIES
from ..tasks import TASKS, get_task, task_for_model
from ..tasks.base import SHARED_COMMANDS


def add_train_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model for a task (classification, sentences, summarization, question answering), keeping the "
        "best one on the dev file",
        description="Train a long-document model from JSON lines or CSV files; the model with the best dev score "
        "(macro-F1 for classifiers) is saved (with its tokenizer) to --output after every improving epoch. "
        '--task sentences trains one label per sentence from lines like {"sentences": ["...", ...], "label": '
        '["...", ...]} (--family hat; the dev macro-F1 is over sentences).',
    )
    add_training_arguments(parser)
    parser.set_defaults(run=run_train)


def add_training_arguments(parser, data_files: bool = True) -> None:
    """What a training takes: the task, family and checkpoint, the data files (`data_files`: --train,
    --validation, --output; `cv` and `search` name their own), the hyper-parameters, every task's
    settings and the loop's (shared by `train`, `cv` and `search`)."""
    tasks = list(TASKS.values())
    parser.add_argument("--task", default="classification", choices=[n for t in tasks for n in (t.name, *t.aliases)],
                        help="what to train (" + "; ".join(f"{t.name}: {t.description}" for t in tasks) + ")")
    defaults = "; ".join([tasks[0].default_family] + [f"{t.default_family} for --task {t.name}" for t in tasks[1:]
                                                       if t.default_family != tasks[0].default_family])
    parser.add_argument("--family", choices=list(FAMILIES),
                        help=f"(default: {defaults}) " + "; ".join(f"{name}: {spec.description}"
                                                                  for name, spec in FAMILIES.items()))
    parser.add_argument("--model", required=True, metavar="SRC", help="checkpoint folder (or hub id) to start from")
    if data_files:
        parser.add_argument("--train", required=True, metavar="FILE", help="training data (.jsonl or .csv)")
        parser.add_argument("--validation", required=True, metavar="FILE", help="dev data, to pick the best epoch")
        parser.add_argument("--output", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    parser.add_argument("--epochs", type=int, metavar="N", help="training epochs (default: the family's)")
    parser.add_argument("--learning-rate", type=float, metavar="X", help="peak learning rate (default: the family's)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="documents per step (default: the family's)")
    parser.add_argument("--seed", type=int, default=42, metavar="N")
    add_loop_arguments(parser)
    for task in tasks:
        task.add_arguments("train", parser)


def add_loop_arguments(parser) -> None:
    loop = parser.add_argument_group("training loop (every task and family)")
    loop.add_argument("--gradient-accumulation-steps", type=int, metavar="N",
                      help="steps whose gradients add up before each update (default 1)")
    loop.add_argument("--warmup-ratio", type=float, metavar="X", help="share of the steps warming the learning rate "
                      "up (default: the task's, 0.1 mostly)")
    loop.add_argument("--weight-decay", type=float, metavar="X", help="AdamW weight decay (default: the family's)")
    loop.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps (the last stage), "
                      "evaluating then")
    loop.add_argument("--early-stopping-patience", type=int, metavar="N",
                      help="stop a stage after N dev evaluations in a row without a better score")
    loop.add_argument("--bf16", action="store_true", default=None,
                      help="bfloat16 mixed precision (default: on where the hardware runs it fast)")
    loop.add_argument("--fp16", action="store_true", default=None, help="float16 mixed precision (CUDA GPUs)")
    loop.add_argument("--save-steps", type=int, metavar="N",
                      help="write a resumable checkpoint every N steps (default: every epoch)")
    loop.add_argument("--save-total-limit", type=int, metavar="N", help="checkpoints kept (default 2)")
    loop.add_argument("--resume", action="store_true", default=None,
                      help="continue an interrupted run from its last checkpoint (same options)")
    loop.add_argument("--nproc-per-node", type=int, metavar="N", help="longdoc train: N processes on this machine "
                      "(DDP through torchrun: gloo on CPU, one process per GPU with NCCL); --batch-size is per process")
    loop.add_argument("--nnodes", type=int, metavar="M", help="machines in the run (the same command on each, with "
                      "its --node-rank; see docs/distributed.md)")
    loop.add_argument("--node-rank", type=int, metavar="R", help="this machine's number, 0 to M-1")
    loop.add_argument("--master-addr", metavar="HOST", help="address of the machine with --node-rank 0")
    loop.add_argument("--master-port", type=int, metavar="PORT", help="its free port (default: any free one on one "
                      "machine, 29500 across machines)")


LOOP_FLAGS = ("gradient_accumulation_steps", "warmup_ratio", "weight_decay", "max_steps", "early_stopping_patience",
              "bf16", "fp16", "save_steps", "save_total_limit", "resume")
LAUNCH_FLAGS = ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port")  # train's (training/launch.py)
SINGLE_RUN_FLAGS = ("resume", "save_steps", "save_total_limit")  # one training's checkpoints (not cv's or search's)


def training_call(args, out) -> tuple:
    """(task, keyword arguments of `longdoc.training.train` less the files) that the parsed arguments give."""
    command = getattr(args, "command", "train")
    given = [f"--{name.replace('_', '-')}" for name in (*LAUNCH_FLAGS, *SINGLE_RUN_FLAGS) if getattr(args, name, None)]
    if given and command != "train":
        raise ValueError(f"longdoc {command} does not take {', '.join(given)}: its trainings run one after the other "
                         f"in this process, without checkpoints, and a stopped {command} goes on where it was when "
                         f"the same command runs again")
    task = get_task(args.task).command_task(args, out)
    options = task.training_options(args)
    options.update({name: getattr(args, name) for name in LOOP_FLAGS if getattr(args, name, None) is not None})
    return task, dict(model=args.model, family=args.family, seed=args.seed, **options)


def add_evaluate_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a trained model on a labelled file (one JSON object on stdout)",
        description="Print one JSON object: for a classifier accuracy, macro_f1, micro_f1, per-label "
        "precision/recall/F1, ROC-AUC, confusion matrix, and the prediction speed (over sentences for a sentence "
        "classifier); for a summarizer ROUGE and the lead baseline's.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR")
    parser.add_argument("data", metavar="FILE", help="labelled data (.jsonl or .csv)")
    for task in TASKS.values():
        task.add_arguments("evaluate", parser)
    parser.set_defaults(run=lambda args: task_for_model(args.model_dir).run("evaluate", args, ConsoleOutput()))


def add_predict_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="classify documents: text files, or .jsonl/.csv files of documents",
        description="Classify each FILE: a .jsonl/.csv file gives one document per line, any other file is one "
        "document. Prints one JSON object per document. A sentence classifier (--task sentences) labels every "
        "sentence: a .jsonl/.csv line gives the list of sentences (--sentences-column), any other file is split "
        "into sentences (shown in its output).",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR")
    parser.add_argument("files", metavar="FILE", nargs="+")
    for task in TASKS.values():
        task.add_arguments("predict", parser)
    parser.set_defaults(run=lambda args: task_for_model(args.model_dir).run("predict", args, ConsoleOutput()))


def add_task_commands(subparsers) -> None:
    """Each task's own commands, run by that task."""
    for task in TASKS.values():
        for name, (help_line, description) in task.commands.items():
            if name in SHARED_COMMANDS or name in subparsers.choices:
                raise ValueError(f"task {task.name} declares the command {name!r}, which exists already")
            parser = subparsers.add_parser(name, help=help_line, description=description)
            task.add_arguments(name, parser)
            parser.set_defaults(run=lambda args, task=task, name=name: task.run(name, args, ConsoleOutput()))


class ConsoleOutput:
    """Where a command's results go: stdout, one line at a time (flushed: summaries stream), and its
    remarks to stderr."""

    def print(self, text: str) -> None:
        print(text, flush=True)

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def run_train(args) -> int:
    from ..training.launch import relaunch_if_asked
    from ..training.train import train

    code = relaunch_if_asked(args, getattr(args, "command_line", sys.argv[1:]))  # --nproc-per-node: torchrun
    if code is not None:
        return code
    out = ConsoleOutput()
    task, options = training_call(args, out)
    try:
        result = train(task.name, args.train, args.validation, args.output, **options)
    except KeyboardInterrupt:
        return 130
    if result.best_epoch is None:
        out.note("no model was saved: the dev set gave no score")
        return 1
    from ..runtime import is_main_process

    if is_main_process():  # one summary for a distributed run
        for line in task.training_summary(result):
            out.print(line)
    return 0
