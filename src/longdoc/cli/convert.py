"""`longdoc` console script: parses arguments and calls library functions, nothing more.

Each subcommand is one `add_<name>_command(subparsers)` function that declares its arguments
and sets `run` to the function doing the work; new subcommands (train, evaluate, serve...)
are added to SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import sys

from .cli_summarization import (
    add_generation_arguments,
    add_summarization_training_arguments,
    add_summarize_command,
    run_evaluate_summarization,
    run_train_summarization,
)


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
    parser.add_argument("--window", type=int, default=None, metavar="W",
                        help="longformer: full attention window, even (default 512)")
    lsg = parser.add_argument_group("lsg settings (defaults: 128, 128, 2, norm, 1)")
    lsg.add_argument("--block-size", type=int, metavar="N", help="tokens per local block")
    lsg.add_argument("--sparse-block-size", type=int, metavar="N", help="compressed keys on each side of a block")
    lsg.add_argument("--sparsity-factor", type=int, metavar="F", help="compression factor of the sparse keys")
    lsg.add_argument("--sparsity-type", metavar="TYPE",
                     help="norm, pooling, lsh, stride, block_stride, bos_pooling or none")
    lsg.add_argument("--num-global-tokens", type=int, metavar="G", help="learned global tokens prepended")
    hat = parser.add_argument_group("hat settings (defaults: S|S|SD|S|S|SD|S|S|SD|S|S|SD, max-length / 128, 128)")
    hat.add_argument("--layout", metavar="LAYOUT",
                     help='one of S, D, SD per layer joined by "|", e.g. "S|S|SD|S|S|SD" (S: segment-wise, '
                     'D: cross-segment, SD: both)')
    hat.add_argument("--max-sentences", type=int, metavar="N", help="segments a document may have")
    hat.add_argument("--max-sentence-size", type=int, metavar="N", help="tokens per segment, its [CLS] included")
    parser.add_argument("--seq2seq", action="store_true",
                        help="lsg: build an encoder-decoder (LSG-BART layout) warm-started from a BERT/RoBERTa "
                        "encoder, for summarization")
    parser.add_argument("--decoder-layers", type=int, metavar="N", help="--seq2seq: decoder layers (default: all)")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip the source comparison")
    parser.set_defaults(run=run_convert)


LSG_SETTINGS = ("block_size", "sparse_block_size", "sparsity_factor", "sparsity_type", "num_global_tokens")
HAT_SETTINGS = ("layout", "max_sentences", "max_sentence_size")
TARGET_SETTINGS = {"longformer": ("window",), "lsg": LSG_SETTINGS, "hat": HAT_SETTINGS}


def run_convert(args) -> int:
    from .convert import convert

    every = ("window",) + LSG_SETTINGS + HAT_SETTINGS
    settings = {name: getattr(args, name) for name in every if getattr(args, name) is not None}
    wrong = [f"--{n.replace('_', '-')}" for n in settings if n not in TARGET_SETTINGS.get(args.to, ())]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do(es) not apply to --to {args.to}")
    if args.seq2seq:
        from .convert.seq2seq import warm_start_summarizer

        if args.to != "lsg":
            raise ValueError("--seq2seq builds an LSG encoder-decoder: use it with --to lsg")
        print(f"warm-starting an LSG encoder-decoder from {args.src} ({args.max_length} tokens) ...", flush=True)
        print(warm_start_summarizer(args.src, args.out, args.max_length, args.decoder_layers, **settings))
        return 0
    if args.decoder_layers is not None:
        raise ValueError("--decoder-layers applies only with --seq2seq")
    shown = ", ".join(f"{k} {v}" for k, v in settings.items())
    length = "" if args.to == "hat" else f"{args.max_length} tokens"  # a HAT's length is its segments'
    print(f"converting {args.src} -> {args.to} ({', '.join(x for x in (length, shown) if x)}) ...", flush=True)
    report = convert(args.src, args.out, to=args.to, max_length=args.max_length, verify=args.verify, **settings)
    print(report)
    return 0


def add_train_command(subparsers) -> None:
    from .tasks.families import FAMILIES

    parser = subparsers.add_parser(
        "train",
        help="train a document classifier, keeping the best model on the dev file",
        description="Train a long-document classifier from JSON lines or CSV files; the model with the best dev "
        "macro-F1 is saved (with its tokenizer) to --output after every improving epoch. --task sentences "
        'trains one label per sentence from lines like {"sentences": ["...", ...], "label": ["...", ...]} '
        "(--family hat; the dev macro-F1 is over sentences).",
    )
    parser.add_argument("--task", default="classification", choices=["classification", "sentences", "summarization",
                                                                      *SENTENCE_TASK_ALIASES],
                        help="what to train (sentences: a label per sentence, with --family hat; summarization: an "
                        "encoder-decoder on text/summary pairs)")
    parser.add_argument("--family", choices=list(FAMILIES),
                        help="(default: segment; hat for --task sentences) " +
                        "; ".join(f"{name}: {family.description}" for name, family in FAMILIES.items()))
    parser.add_argument("--model", required=True, metavar="SRC", help="encoder checkpoint folder (or hub id) to start from")
    parser.add_argument("--train", required=True, metavar="FILE", help="training documents (.jsonl or .csv)")
    parser.add_argument("--validation", required=True, metavar="FILE", help="dev documents, to pick the best epoch")
    parser.add_argument("--output", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="train only the layers above a frozen encoder (segment vectors are cached: minutes on a CPU)")
    parser.add_argument("--no-head-warmup", dest="head_warmup", action="store_false",
                        help="fine-tuning: skip the first stage that trains the layers above the frozen encoder "
                        "on its cached segment vectors before everything fine-tunes")
    parser.add_argument("--epochs", type=int, metavar="N", help="training epochs (default: the family's)")
    parser.add_argument("--learning-rate", type=float, metavar="X", help="peak learning rate (default: the family's)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="documents per step (default: the family's)")
    parser.add_argument("--seed", type=int, default=42, metavar="N")
    parser.add_argument("--multi-label", action="store_true", help="each document has a list of labels")
    add_column_arguments(parser)
    parser.add_argument("--chunk-size", type=int, metavar="N", help="tokens per segment, special tokens excluded")
    parser.add_argument("--stride", type=int, metavar="N", help="tokens between segment starts (default: chunk size)")
    parser.add_argument("--pooling", choices=["cls", "mean", "max", "first", "last", "attentive"],
                        help="segment families: segment vector, [CLS] or mean of its tokens (default mean); hat: how "
                        "the segments make the document vector, max, first, last or attentive (default max)")
    parser.add_argument("--chunk-pooling", choices=["mean", "max"], help="chunk-pool: how segment logits combine")
    parser.add_argument("--max-segments", type=int, metavar="N", help="most segments a document keeps")
    parser.add_argument("--max-length", type=int, metavar="N", help="longformer: tokens read (default 4096); hat: "
                        "sets --max-sentences to N / --max-sentence-size")
    parser.add_argument("--threshold", type=float, metavar="P", help="multi-label: probability to predict a label")
    parser.add_argument("--cache-dir", metavar="DIR", help="frozen segment vectors (default ~/.cache/longdoc)")
    add_hat_training_arguments(parser)
    add_summarization_training_arguments(parser)
    parser.set_defaults(run=run_train)


def add_hat_training_arguments(parser) -> None:
    hat = parser.add_argument_group(
        "hat (--family hat; a short encoder is converted first, a HAT checkpoint is used as it is)")
    hat.add_argument("--layout", metavar="LAYOUT",
                     help='S, D or SD per layer joined by "|" (S: segment-wise, D: cross-segment, SD: both); default: '
                     'as deep as the encoder, every third layer SD (S|S|SD|S|S|SD for 6 layers)')
    hat.add_argument("--max-sentences", type=int, metavar="N",
                     help="most segments a document has (default 32, i.e. 4096 tokens at 128; 64 for --task sentences, "
                     "one sentence a segment); a batch pads only to its longest document")
    hat.add_argument("--max-sentence-size", type=int, metavar="N",
                     help="tokens per segment, its [CLS] included (default 128)")
    hat.add_argument("--segmentation", choices=["greedy", "uniform"],
                     help="greedy (default): whole sentences packed into each segment, a longer sentence going on in "
                     "the next; uniform: consecutive chunks of tokens")
    hat.add_argument("--truncate", action="store_true",
                     help="read only the first --max-sentences segments (sentences) of a longer document, with a "
                     "warning saying how much is cut; without it such a document is an error")
    hat.add_argument("--sentences-column", default="sentences", metavar="NAME",
                     help="--task sentences: field holding the list of sentences")


def add_column_arguments(parser) -> None:
    parser.add_argument("--text-column", default="text", metavar="NAME", help="field holding the text")
    parser.add_argument("--label-column", default="label", metavar="NAME", help="field holding the label(s)")


SENTENCE_TASK_ALIASES = ("sequential-sentence-classification", "sentence-classification")


def run_train(args) -> int:
    from .data.documents import holds_sentence_lists
    from .train import train_classifier

    if args.task == "summarization":
        return run_train_summarization(args)
    if args.task in SENTENCE_TASK_ALIASES:
        args.task = "sentences"
    if (args.task == "classification" and args.family in (None, "hat")
            and holds_sentence_lists(args.train, args.sentences_column, args.text_column)):
        print(f"{args.train} holds lists of sentences with a label each ({args.sentences_column!r}, no "
              f"{args.text_column!r}): training sequential sentence classification (--task sentences)", flush=True)
        args.task = "sentences"
    family = args.family or ("hat" if args.task == "sentences" else "segment")
    try:
        result = train_classifier(
            args.train, args.validation, args.output, family=family, model=args.model,
            freeze_encoder=args.freeze_encoder, epochs=args.epochs, learning_rate=args.learning_rate,
            batch_size=args.batch_size, seed=args.seed, multi_label=args.multi_label,
            text_column=args.text_column, label_column=args.label_column, chunk_size=args.chunk_size,
            stride=args.stride, pooling=args.pooling, chunk_pooling=args.chunk_pooling,
            max_segments=args.max_segments, max_length=args.max_length, threshold=args.threshold,
            cache_dir=args.cache_dir, head_warmup=args.head_warmup, task=args.task,
            sentences_column=args.sentences_column, layout=args.layout, max_sentences=args.max_sentences,
            max_sentence_size=args.max_sentence_size, segmentation=args.segmentation, truncate=args.truncate,
        )
    except KeyboardInterrupt:
        return 130
    if result.best_epoch is None:
        print("no model was saved: the dev set gave no score", file=sys.stderr)
        return 1
    scores = result.dev_metrics
    print(f"saved the best model ({result.best_when()}) to {result.output}")
    over = " (sentences)" if args.task == "sentences" else ""
    print(f"dev{over}: macro-F1 {scores['macro_f1']:.4f}, accuracy {scores['accuracy']:.4f}, micro-F1 "
          f"{scores['micro_f1']:.4f} ({result.seconds:.0f} s)")
    return 0


def add_evaluate_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a trained classifier on a labelled file (one JSON object on stdout)",
        description="Print one JSON object: accuracy, macro_f1, micro_f1, per-label precision/recall/F1, "
        "ROC-AUC, confusion matrix, and the prediction speed; over sentences for a sentence classifier.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR")
    parser.add_argument("data", metavar="FILE", help="labelled documents (.jsonl or .csv)")
    add_column_arguments(parser)
    add_hat_reading_arguments(parser)
    parser.add_argument("--summary-column", default="summary", metavar="NAME",
                        help="summarization models: field holding the reference summary")
    parser.add_argument("--batch-size", type=int, default=2, metavar="N", help="summarization: documents per batch")
    add_generation_arguments(parser)
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    import json

    from transformers import AutoConfig

    from .pipelines import SentenceClassifier, load_pipeline

    if getattr(AutoConfig.from_pretrained(args.model_dir), "is_encoder_decoder", False):
        return run_evaluate_summarization(args)
    classifier = load_pipeline(args.model_dir, truncate=args.truncate or None)
    if isinstance(classifier, SentenceClassifier):
        metrics = classifier.evaluate(args.data, args.sentences_column, args.label_column, progress="predicting")
    else:
        metrics = classifier.evaluate(args.data, args.text_column, args.label_column, progress="predicting")
    print(json.dumps(metrics))
    return 0


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
    parser.add_argument("--explain", action="store_true",
                        help="show the segments that drove each predicted label and, in each, the sentences that "
                        "carry it (scored by occlusion: a few times the cost of predicting)")
    parser.add_argument("--top-segments", type=int, default=3, metavar="K", help="segments shown per label")
    parser.add_argument("--top-sentences", type=int, default=3, metavar="K", help="sentences shown per segment")
    parser.add_argument("--text-column", default="text", metavar="NAME")
    add_hat_reading_arguments(parser)
    parser.set_defaults(run=run_predict)


def add_hat_reading_arguments(parser) -> None:
    parser.add_argument("--truncate", action="store_true",
                        help="HAT models: read only the first max_sentences segments (sentences) of a longer document, "
                        "with a warning, even where the model was trained without --truncate")
    parser.add_argument("--sentences-column", default="sentences", metavar="NAME",
                        help="sentence classifiers: field holding the list of sentences")


def run_predict(args) -> int:
    import json

    from .pipelines import load_pipeline
    from .tasks.families import classifier_task

    if classifier_task(args.model_dir) == "sentences":
        return run_predict_sentences(args)
    sources, texts = [], []
    for source, text in iter_documents(args.files, args.text_column):
        sources.append(source)
        texts.append(text)
    classifier = load_pipeline(args.model_dir, truncate=args.truncate or None)
    predictions = classifier.predict(texts, explain=args.explain, top_segments=args.top_segments,
                                     top_sentences=args.top_sentences, progress="predicting")
    for source, prediction in zip(sources, predictions):
        record = {"document": source, "labels": prediction.labels,
                  "scores": {k: round(v, 6) for k, v in prediction.scores.items()}}
        if args.explain:
            record["explanation"] = {label: e.to_dict() for label, e in prediction.explanation.items()}
        print(json.dumps(record, ensure_ascii=False))
        if args.explain:
            print(format_explanation(prediction), file=sys.stderr)
    return 0


def run_predict_sentences(args) -> int:
    """A label per sentence: .jsonl/.csv files give lists of sentences (--sentences-column), any other
    file is one text, split into sentences (shown in the output)."""
    import json

    from .pipelines import SentenceClassifier, split_into_sentences

    if args.explain:
        raise ValueError("--explain applies to document classifiers; a sentence classifier labels every sentence")
    sources, documents, split = [], [], []
    for name in args.files:
        if name.endswith((".jsonl", ".json", ".csv", ".tsv")):
            from .data.documents import read_sentence_documents

            for document in read_sentence_documents(name, args.sentences_column, require_labels=False):
                sources.append(document.id or document.source)
                documents.append(list(document.sentences))
                split.append(False)
        else:
            sources.append(name)
            documents.append(split_into_sentences(_read_text(name)))
            split.append(True)
    classifier = SentenceClassifier.from_pretrained(args.model_dir, truncate=args.truncate or None)
    predictions = classifier.predict(documents, progress="predicting")
    for source, prediction, was_split in zip(sources, predictions, split):
        record = {"document": source, "labels": prediction.labels,
                  "scores": [None if s is None else {k: round(v, 6) for k, v in s.items()} for s in prediction.scores]}
        if was_split:
            record["sentences"] = prediction.sentences
        if prediction.unread:
            record["sentences_not_read"] = prediction.unread
        print(json.dumps(record, ensure_ascii=False))
    return 0


def iter_documents(files: list[str], text_column: str):
    """(source, text) of every document: a .jsonl/.csv file gives one per line, any other file is one."""
    from .data.documents import read_documents

    for name in files:
        if name.endswith((".jsonl", ".json", ".csv", ".tsv")):
            for document in read_documents(name, text_column, require_labels=False):
                yield document.id or document.source, document.text
        else:
            yield name, _read_text(name)


def _read_text(name: str) -> str:
    from .data.documents import DataError

    try:
        text = open(name, encoding="utf-8", errors="replace").read()
    except OSError as error:
        raise DataError(f"{name}: cannot read ({error.strerror})") from None
    if not text.strip():
        raise DataError(f"{name}: empty document")
    return text


def format_explanation(prediction, width: int = 200) -> str:
    """Per label, its top segments (weight, characters) and under each the sentences that carry the
    label: the drop of its log-odds without the sentence, the sentence's characters and its text."""
    lines = []
    for label, explanation in prediction.explanation.items():
        lines.append(f"  {label} ({explanation.probability:.3f}):")
        for segment in explanation.segments:
            lines.append(f"    segment {segment.segment:>3}  weight {segment.weight:.3f}  "
                         f"characters {segment.start}-{segment.end}")
            for sentence in segment.sentences:
                text = " ".join(sentence.text.split())
                text = text if len(text) <= width else text[: width - 3].rstrip() + "..."
                lines.append(f"      {sentence.score:+7.3f}  [{sentence.start}:{sentence.end}]  {text}")
    return "\n".join(lines)


SUBCOMMANDS = (add_convert_command, add_train_command, add_evaluate_command, add_predict_command,
               add_summarize_command)


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
    from .logs import show_progress

    show_progress()  # the library's progress lines (training epochs...) on stderr
    from .data.documents import DataError

    try:
        return args.run(args)
    except (ValueError, VerificationError, DataError) as error:
        print(f"longdoc {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
