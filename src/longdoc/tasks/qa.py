"""Extractive question answering over long documents: a span of the context answers the question.

Families: longformer (default), lsg, hat. Data: SQuAD JSON (v1.1 or v2.0 with unanswerable questions)
or JSON lines `{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}`
(`longdoc.data.qa`). Each question and its context become windows of the model's length sharing
`doc_stride` tokens (HAT: windows of segments that each carry the question); a window is labelled
with the answer's first and last tokens, or CLS when the answer is not wholly inside it. After each
epoch every dev question is answered over all its windows as the pipeline answers, and the epoch of
the best dev F1 (SQuAD, 0-100) is kept. Its own command: `longdoc answer MODEL FILE... --question Q`.

No torch at import: the command line reads this module to build its parser.
"""

from __future__ import annotations

import json
import logging

from ..data.qa_defaults import CONFIG_FIELD, DEFAULT_MAX_ANSWER_LENGTH
from ..errors import DataError
from .base import RequestField, Stage, Task, add_option, without_key

logger = logging.getLogger(__name__)

LSG_SETTINGS = ("block_size", "sparse_block_size", "sparsity_factor", "sparsity_type", "num_global_tokens")
HAT_SETTINGS = ("layout", "max_sentences", "max_sentence_size")
# the settings of QA training (library keyword arguments, and the CLI flags of the same names)
SETTINGS = ("max_length", "doc_stride", "max_answer_length", "gradient_accumulation_steps", "gradient_checkpointing",
            "bf16", "negative_windows", *HAT_SETTINGS, *LSG_SETTINGS)


class QuestionAnsweringTask(Task):
    name = "question-answering"
    aliases = ("qa", "extractive-qa")
    description = "extractive question answering: the span of a long context that answers a question"
    head = "spans"
    default_family = "longformer"
    primary_metric = "f1"
    pipeline = "longdoc.pipelines.qa:QuestionAnswerer"
    serve_action = "answer"
    commands = {"answer": (
        "answer questions from documents with a question-answering model",
        "Answer every --question from each FILE (a text file, the whole of it the context). Prints one JSON line "
        'per (file, question): {"file", "question", "answer", "score", "start", "end"}, where start and end are '
        "character offsets into the file's text (text[start:end] == answer); an unanswered question has answer \"\" "
        'and start/end null. With --top-k K > 1 each line also has "answers": the K best, each with answer, score, '
        "start and end.")}

    # -- data ----------------------------------------------------------------------------------

    def read(self, path, options, require_targets=True):
        from ..data.qa import read_qa

        return read_qa(path)

    # -- training ------------------------------------------------------------------------------

    def family_options(self, family, options: dict) -> dict:
        """The settings the family checks and builds with."""
        names = ("max_length", *HAT_SETTINGS, *LSG_SETTINGS)
        return {"head": self.head, **{name: options.get(name) for name in names if options.get(name) is not None}}

    def check_options(self, family, options):
        family.check_options(self.family_options(family, options))
        if family.name != "lsg":
            given = [f"--{n.replace('_', '-')}" for n in LSG_SETTINGS if options.get(n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to --family lsg only; --family {family.name} does not "
                                 f"take them")
        for name in ("max_length", "max_answer_length", "gradient_accumulation_steps"):
            if options.get(name) is not None and options[name] < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {options[name]}")
        share = options.get("negative_windows")
        if share is not None and not 0 <= share <= 1:
            raise ValueError(f"--negative-windows {share}: give the share of answerless windows to keep, from 0 to 1")
        stride, length = options.get("doc_stride"), options.get("max_length")
        if stride is not None and stride < 0:
            raise ValueError(f"--doc-stride must be 0 or more (the tokens consecutive windows share), got {stride}")
        if stride is not None and length is not None and stride >= length:
            raise ValueError(f"--doc-stride ({stride}) must be smaller than --max-length ({length}): it is the overlap "
                             f"between consecutive windows; try --doc-stride {min(length // 4, 512)}")

    def check_data(self, family, source, data, options):
        """Before any model is built: a fast tokenizer, and every question short enough to leave context room
        in a window (HAT: a segment), named by file and line."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{source}: its tokenizer ({type(tokenizer).__name__}) is a slow (Python) one, which "
                             f"gives no character offsets; question answering needs a fast tokenizer (a "
                             f"tokenizer.json in the checkpoint folder)")
        window, what = planned_window(family, source, tokenizer, options)
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        stride = options.get("doc_stride")
        if stride is not None and family.name != "hat" and stride >= window:
            raise ValueError(f"--doc-stride ({stride}) must be smaller than the window ({window} tokens): it is the "
                             f"overlap between consecutive windows; try --doc-stride {min(window // 4, 512)}")
        records = data.train + data.dev
        lengths = [len(ids) for ids in tokenizer([r.question for r in records], add_special_tokens=False)["input_ids"]]
        for record, length in zip(records, lengths):
            room = window - specials - length
            if room < 1 or (stride is not None and family.name != "hat" and room <= stride):
                need = "no room for context" if room < 1 else f"only {room} context tokens, not more than --doc-stride"
                raise DataError(f"{record.source}: the question is {length} tokens long: with {specials} special tokens "
                                f"it leaves {need} in {what} of {window} tokens; shorten the question"
                                + ("" if family.name == "hat" else " or give a longer --max-length"))

    def defaults(self, family, options):
        from ..families.base import TrainingDefaults

        return TrainingDefaults(epochs=3, learning_rate=3e-5, batch_size=2, select_metric=self.primary_metric,
                                warmup_ratio=0.1, weight_decay=0.01)

    def build(self, run):
        from transformers import AutoConfig

        from ..families.hat import DEFAULT_MAX_SENTENCES, HAT_MODEL_TYPE

        options = {**run.options, **self.family_options(run.family, run.options), "work_dir": run.work_dir}
        if (run.family.name == "hat" and options.get("max_sentences") is None and options.get("max_length") is None
                and AutoConfig.from_pretrained(run.source).model_type != HAT_MODEL_TYPE):
            options["max_sentences"] = DEFAULT_MAX_SENTENCES["classification"]  # the family has no QA default
        model, tokenizer = run.family.build(self.head, run.source, options)
        run.state["settings"] = settings = self.window_settings(run, model, tokenizer)
        setattr(model.config, CONFIG_FIELD, settings)  # saved with the model: `answer` and `evaluate` read it
        logger.info(f"{run.family.name} question answering on {run.source}: {len(run.data.train)} training and "
                    f"{len(run.data.dev)} dev questions, windows of {settings['max_length']} tokens (stride "
                    f"{settings['doc_stride'] if settings['doc_stride'] is not None else 'by question'}), answers up "
                    f"to {settings['max_answer_length']} tokens")
        return model, tokenizer

    def window_settings(self, run, model, tokenizer) -> dict:
        from ..data.qa_windows import default_doc_stride, default_max_length

        options = run.options
        if model.config.model_type == "hierarchical-transformer":
            longest = model.config.max_sentences * model.config.max_sentence_size
        else:
            longest = default_max_length(model.config, tokenizer)
        length = min(options.get("max_length") or longest, longest)
        stride = options.get("doc_stride")
        if stride is None and model.config.model_type != "hierarchical-transformer":
            stride = default_doc_stride(length)  # HAT: a share of each window's context, which its question sets
        if stride is not None and stride >= length:
            raise ValueError(f"--doc-stride ({stride}) must be smaller than the window ({length} tokens): it is the "
                             f"overlap between consecutive windows; try --doc-stride {default_doc_stride(length)}")
        unanswerable = any(not r.answerable for r in run.data.train + run.data.dev)
        return {"max_length": length, "doc_stride": stride,
                "max_answer_length": options.get("max_answer_length") or DEFAULT_MAX_ANSWER_LENGTH,
                "handle_impossible_answer": unanswerable}

    def features(self, run, examples, split):
        """Labelled windows as collator items; the dev windows are kept to decode the dev predictions."""
        from ..data.qa_windows import training_features

        settings, model, tokenizer = run.state["settings"], run.model, run.tokenizer
        if model.config.model_type == "hierarchical-transformer":
            from ..data.hat_qa_windows import hat_training_windows

            size = model.config.max_sentence_size
            windows = hat_training_windows(tokenizer, examples, size, max(1, settings["max_length"] // size),
                                           settings["doc_stride"])
            items = [{"input_ids": w.inputs.input_ids, "attention_mask": w.inputs.attention_mask,
                      "token_type_ids": w.inputs.token_type_ids, "start_positions": w.start_position,
                      "end_positions": w.end_position} for w in windows]
        else:
            from ..pipelines.qa import QUESTION_FIELD, input_names

            windows = training_features(tokenizer, examples, settings["max_length"], settings["doc_stride"])
            names = input_names(model, windows[0])
            items = [{**{name: getattr(w, QUESTION_FIELD.get(name, name)) for name in names},
                      "start_positions": w.start_position, "end_positions": w.end_position} for w in windows]
        if split == "train":
            items = keep_negative_windows(items, run.options.get("negative_windows"), run.seed)
        answered = sum(item["start_positions"] != 0 for item in items)
        logger.info(f"{len(examples)} {'training' if split == 'train' else 'dev'} questions -> {len(items)} windows "
                    f"({answered} hold their answer)")
        if split == "dev":
            run.state["dev_windows"] = windows
        return items

    def collator(self, run):
        pad_id = run.tokenizer.pad_token_id
        return lambda items: collate_windows(items, pad_id)

    def compute_metrics(self, run):
        def compute(prediction):
            from ..pipelines.qa import decodable, score_records

            start_logits, end_logits = prediction.predictions[:2]
            windows = run.state["dev_windows"]
            starts = [start_logits[i, :len(w)] for i, w in enumerate(windows)]
            ends = [end_logits[i, :len(w)] for i, w in enumerate(windows)]
            metrics = score_records(run.data.dev, *decodable(windows, starts, ends),
                                    run.state["settings"]["max_answer_length"], run.tokenizer)
            return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}

        return compute

    def stages(self, run):
        from ..runtime import bf16_autocast_default

        options = run.options
        train_items, dev_items = self.features(run, run.data.train, "train"), self.features(run, run.data.dev, "dev")
        accumulation = options.get("gradient_accumulation_steps") or 1
        bf16 = options.get("bf16")
        bf16 = bf16_autocast_default(run.device) if bf16 is None else bf16
        steps_per_epoch = -(-len(train_items) // (run.batch_size * accumulation))
        arguments = dict(gradient_accumulation_steps=accumulation, bf16=bf16,
                         activation_checkpointing=options.get("gradient_checkpointing", True) is not False,
                         remove_unused_columns=False,  # LSG's question_mask is no named forward argument
                         logging_steps=max(1, steps_per_epoch // 5))
        return [Stage("training", train_items, dev_items, self.collator(run), self.compute_metrics(run), run.epochs,
                      run.learning_rate, run.batch_size, eval_batch_size=2 * run.batch_size,
                      warmup_ratio=run.defaults.warmup_ratio, weight_decay=run.defaults.weight_decay,
                      arguments=arguments, lengths=[len(item["input_ids"]) for item in train_items])]

    def describe_scores(self, record, metric):
        nan = float("nan")
        loss = record["train_loss"] if record.get("train_loss") is not None else nan
        return (f"train loss {loss:.4f}, dev loss {record.get('loss', nan):.4f}, dev EM "
                f"{record.get('exact_match', nan):.2f}, F1 {record.get('f1', nan):.2f}")

    def training_summary(self, result):
        best = result.dev_metrics
        return [f"saved the best model ({result.best_when()}) to {result.output}",
                f"dev: exact match {best['exact_match']:.2f}, F1 {best['f1']:.2f} ({result.seconds:.0f} s)"]

    # -- command line --------------------------------------------------------------------------

    def add_arguments(self, command, parser):
        if command == "train":
            group = parser.add_argument_group("question answering (--task question-answering)")
            add_window_arguments(group, "train")  # the LSG and HAT flags are the classification task's
            add_option(group, "--no-gradient-checkpointing", dest="no_gradient_checkpointing", action="store_true",
                       help="question answering: keep activations instead of recomputing them in the backward pass "
                       "(faster, more memory; checkpointing is on by default)")
            add_option(group, "--negative-windows", type=float, metavar="F",
                       help="share of the training windows that do not hold their answer (labelled no-answer at CLS) "
                       "kept each run, drawn with --seed (default 1: all, the standard recipe); a long context makes "
                       "most windows answerless, and fewer of them make an epoch cheaper")
        elif command == "evaluate":
            add_window_arguments(parser, "evaluate")
        elif command == "answer":
            parser.add_argument("model_dir", metavar="MODEL_DIR")
            parser.add_argument("files", metavar="FILE", nargs="+", help="text files, each one context")
            parser.add_argument("--question", action="append", required=True, metavar="Q",
                                help="a question (repeat for more); each is answered from every FILE")
            add_window_arguments(parser, "answer")
            parser.add_argument("--top-k", type=int, default=1, metavar="K", help="answers kept per question")
            parser.add_argument("--handle-impossible-answer", action="store_true", default=None,
                                help="allow the answer \"no answer\" (on by default for models trained with "
                                "unanswerable questions)")

    def training_options(self, args):
        options = {"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                   **{name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}}
        options["gradient_checkpointing"] = not args.no_gradient_checkpointing
        options["bf16"] = args.bf16  # None (not given): the hardware decides (runtime.bf16_autocast_default)
        return options

    def run(self, command, args, out):
        if command == "evaluate":
            return self.run_evaluate(args, out)
        if command == "answer":
            return self.run_answer(args, out)
        if command == "predict":
            raise ValueError(f"{args.model_dir} is a question-answering model: ask it with `longdoc answer "
                             f"{args.model_dir} FILE... --question \"...\"`")
        return super().run(command, args, out)

    def load_pipeline(self, model_dir, options: dict):
        """The reader in `model_dir` with the windows `options` (a command's arguments or settings) give."""
        windows = {"max_length": options.get("max_length"), "doc_stride": options.get("doc_stride"),
                   "max_answer_len": options.get("max_answer_length")}
        return self.pipeline_class().from_pretrained(model_dir, **windows)

    def evaluate_file(self, model_dir, path, options):
        return self.load_pipeline(model_dir, options).evaluate(path)

    def fold_groups(self, examples, options):
        """Questions on one context stay in one fold (else a fold is tested on contexts it trained on)."""
        return [record.context for record in examples]

    def run_answer(self, args, out) -> int:
        if args.top_k < 1:
            raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
        texts = [read_context(name) for name in args.files]  # every file checked before the model loads
        questions = [q for q in args.question]
        for index, question in enumerate(questions):
            if not question.strip():
                raise ValueError(f"--question {index + 1} is empty: ask something")
        answerer = self.load_pipeline(args.model_dir, vars(args))
        pairs = [(name, text, question) for name, text in zip(args.files, texts) for question in questions]
        results = answerer.answer([q for _, _, q in pairs], [t for _, t, _ in pairs], top_k=args.top_k,
                                  handle_impossible_answer=args.handle_impossible_answer,
                                  progress="answering" if len(pairs) > 1 else None)
        for (name, _, question), answers in zip(pairs, results):
            out.print(json.dumps(self.prediction_json(answers, name, question, args.top_k), ensure_ascii=False))
        return 0

    # -- serving -------------------------------------------------------------------------------

    def serve_fields(self):
        return [RequestField("text", str, description="the document (the context the answer is taken from)",
                             min_length=1),
                RequestField("question", str, description="the question", min_length=1),
                RequestField("top_k", int, 1, "answers kept (with more than 1 the response lists them in answers)",
                             minimum=1, maximum=100),
                RequestField("handle_impossible_answer", bool | None, None, "allow the answer \"no answer\" "
                             "(default: as the model was trained)"),
                RequestField("max_length", int | None, None, "tokens per window (default: as trained; at most "
                             "what the model reads)", minimum=1),
                RequestField("doc_stride", int | None, None, "tokens consecutive windows share (default: as "
                             "trained)", minimum=0),
                RequestField("max_answer_length", int | None, None, "most tokens in an answer (default: as trained)",
                             minimum=1, maximum=100_000)]

    def serve_check(self, request, described):
        super().serve_check(request, described)
        if not request["question"].strip():
            raise DataError("question is blank: ask something")
        longest, window = described.get("longest_window"), request["max_length"] or described.get("max_length")
        if longest is not None and request["max_length"] is not None and request["max_length"] > longest:
            raise DataError(f"max_length {request['max_length']} is longer than the model reads ({longest} tokens): "
                            f"give at most {longest}")
        if request["doc_stride"] is not None and window is not None and request["doc_stride"] >= window:
            raise DataError(f"doc_stride ({request['doc_stride']}) must be smaller than the window (max_length "
                            f"{window}): it is the overlap between consecutive windows")

    def serve_tokens(self, tokenizer, request):
        return sum(len(ids) for ids in tokenizer([request["text"], request["question"]], add_special_tokens=False,
                                                 verbose=False)["input_ids"])

    def serve_batch_key(self, request):
        return tuple(request[name] for name in ("top_k", "handle_impossible_answer", "max_length", "doc_stride",
                                                "max_answer_length"))

    def serve_predict(self, pipeline, requests):
        first = requests[0]
        results = pipeline.answer([r["question"] for r in requests], [r["text"] for r in requests],
                                  top_k=first["top_k"], handle_impossible_answer=first["handle_impossible_answer"],
                                  max_length=first["max_length"], doc_stride=first["doc_stride"],
                                  max_answer_len=first["max_answer_length"])
        return [without_key(self.prediction_json(answers, None, r["question"], r["top_k"]), "file")
                for answers, r in zip(results, requests)]

    def serve_describe(self, pipeline):
        defaults = getattr(pipeline, "defaults", {})
        longest = pipeline.model_length() if hasattr(pipeline, "model_length") else None
        return {"max_document_tokens": None, "longest_window": longest,
                "reads": f"windows of {defaults.get('max_length', '?')} tokens over the whole document",
                **{name: defaults.get(key) for name, key in (("max_length", "max_length"), ("doc_stride", "doc_stride"),
                                                             ("max_answer_length", "max_answer_len"))}}

    def prediction_json(self, answers, source, question=None, top_k=1):
        best = answers[0] if answers else {"answer": "", "score": 0.0, "start": 0, "end": 0}
        record = {"file": source, "question": question, **answer_json(best)}
        if top_k > 1:
            record["answers"] = [answer_json(a) for a in answers]
        return record


def answer_json(answer: dict) -> dict:
    """An answer as `longdoc answer` prints it: "no answer" has start and end null."""
    empty = answer["answer"] == ""
    return {"answer": answer["answer"], "score": round(float(answer["score"]), 6),
            "start": None if empty else answer["start"], "end": None if empty else answer["end"]}


def add_window_arguments(parser, command: str) -> None:
    """--max-length, --doc-stride, --max-answer-length (--max-length may be another task's flag already: its
    help then says what it means here)."""
    trained = command != "train"
    defaults = {
        "--max-length": "what the model was trained with, else its whole length" if trained else
        "the model's whole length; a short encoder is converted to it, 4096 if not given",
        "--doc-stride": ("what the model was trained with, else " if trained else "")
        + "a quarter of the window, at most 512 (HAT: of a window's context)",
        "--max-answer-length": ("what the model was trained with, else " if trained else "")
        + f"{DEFAULT_MAX_ANSWER_LENGTH}, for paragraph-long answers (transformers' 15 is for SQuAD's short ones)",
    }
    what = "" if command == "answer" else "question answering: "
    add_option(parser, "--max-length", type=int, metavar="N",
               help=f"{what}tokens per window (default: {defaults['--max-length']})")
    action = parser._option_string_actions["--max-length"]
    if "tokens per window" not in (action.help or ""):
        action.help = f"{action.help}; question answering: tokens per window (default: {defaults['--max-length']})"
    add_option(parser, "--doc-stride", type=int, metavar="N",
               help=f"{what}tokens consecutive windows share (default: {defaults['--doc-stride']})")
    add_option(parser, "--max-answer-length", type=int, metavar="N",
               help=f"{what}most tokens in an answer (default: {defaults['--max-answer-length']})")


def planned_window(family, source: str, tokenizer, options: dict) -> tuple[int, str]:
    """(tokens, what) of the windows a model built from `source` will read, before building it: a
    HAT's segment, else the window (the source's own length, or the length it is converted to)."""
    from transformers import AutoConfig

    from ..data.qa_windows import default_max_length
    from ..families.sequence import DEFAULT_MAX_LENGTH

    config = AutoConfig.from_pretrained(source)
    if family.name == "hat":
        if config.model_type == "hierarchical-transformer":
            return config.max_sentence_size, "HAT segments"
        return family.conversion_settings(source, config, {**options, "head": "classification"})[
            "max_sentence_size"], "HAT segments"
    if family.is_own(config):
        own = default_max_length(config, tokenizer)
        return min(options.get("max_length") or own, own), "windows"
    return options.get("max_length") or DEFAULT_MAX_LENGTH, "windows"


def keep_negative_windows(items: list[dict], share: float | None, seed: int) -> list[dict]:
    """The training windows with only `share` of those without their answer (start at CLS), drawn with `seed`;
    every window that holds its answer is kept."""
    if share is None or share >= 1:  # its range is checked with the other options, before any model is built
        return items
    import random

    negatives = [i for i, item in enumerate(items) if item["start_positions"] == 0]
    dropped = set(random.Random(seed).sample(negatives, len(negatives) - round(share * len(negatives))))
    logger.info(f"kept {len(negatives) - len(dropped)} of {len(negatives)} training windows without their answer "
                f"(--negative-windows {share})")
    return [item for i, item in enumerate(items) if i not in dropped]


def collate_windows(items: list[dict], pad_id: int):
    """Items padded on the right to the longest: pad_id in input_ids, 0 in the masks; labels as they are."""
    import torch

    length = max(len(item["input_ids"]) for item in items)
    batch = {}
    for name, value in items[0].items():
        if name in ("start_positions", "end_positions"):
            batch[name] = torch.tensor([item[name] for item in items], dtype=torch.long)
            continue
        fill = pad_id if name == "input_ids" else 0
        batch[name] = torch.tensor([list(item[name]) + [fill] * (length - len(item[name])) for item in items],
                                   dtype=torch.long)
    return batch


def read_context(name: str) -> str:
    """The exact text of a file (UTF-8; newlines kept as they are, so offsets count every character)."""
    try:
        with open(name, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise DataError(f"{name}: no such file; give text files to answer from") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{name}: not UTF-8 text ({error}); save it as UTF-8") from None
    except OSError as error:
        raise DataError(f"{name}: cannot read ({error.strerror})") from None
    if not text.strip():
        raise DataError(f"{name}: the file is empty: give a text to answer from")
    return text
