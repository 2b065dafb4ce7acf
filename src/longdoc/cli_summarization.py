"""The summarization side of the `longdoc` console script: `summarize`, and `train --task summarization` /
`evaluate` on an encoder-decoder model."""

from __future__ import annotations

import json
import sys


def add_generation_arguments(parser) -> None:
    group = parser.add_argument_group("generation (defaults: the model's generation config)")
    group.add_argument("--num-beams", type=int, metavar="N", help="beam search width")
    group.add_argument("--length-penalty", type=float, metavar="X", help="> 1 favours longer summaries")
    group.add_argument("--no-repeat-ngram-size", type=int, metavar="N", help="never repeat an n-gram of this size")
    group.add_argument("--min-length", type=int, metavar="N", help="fewest tokens in a summary")
    group.add_argument("--max-length", type=int, metavar="N", help="most tokens in a summary")


def generation_options(args) -> dict:
    return {name: getattr(args, name) for name in ("num_beams", "length_penalty", "no_repeat_ngram_size",
                                                   "min_length", "max_length")}


def add_summarize_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "summarize", help="summarize documents with an encoder-decoder (LSG-BART) model",
        description="Summarize each FILE: a .jsonl/.csv file gives one document per line, any other file is one "
        "document. Prints one JSON object per document as soon as its batch is done.",
    )
    parser.add_argument("model_dir", metavar="MODEL")
    parser.add_argument("files", metavar="FILE", nargs="+")
    parser.add_argument("--text-column", default="text", metavar="NAME")
    parser.add_argument("--batch-size", type=int, default=2, metavar="N", help="documents generated together")
    parser.add_argument("--max-source-length", type=int, metavar="N", help="tokens read per document (default: all "
                        "the model takes)")
    add_generation_arguments(parser)
    parser.set_defaults(run=run_summarize)


def run_summarize(args) -> int:
    from .cli import iter_documents
    from .summarizer import Summarizer

    summarizer = Summarizer.from_pretrained(args.model_dir, batch_size=args.batch_size,
                                            max_source_length=args.max_source_length)
    options = summarizer.generation_settings(**generation_options(args))  # bad options fail before any reading
    sources = []

    def texts():
        for source, text in iter_documents(args.files, args.text_column):
            sources.append(source)
            yield text

    for index, summary in enumerate(summarizer.summarize(texts(), **options)):
        print(json.dumps({"source": sources[index], "summary": summary}), flush=True)
    if summarizer.truncated:
        print(f"note: {summarizer.truncated} document(s) were longer than {summarizer.max_source_length} tokens and "
              f"were truncated", file=sys.stderr)
    return 0


def add_summarization_training_arguments(parser) -> None:
    group = parser.add_argument_group("summarization (--task summarization)")
    group.add_argument("--summary-column", default="summary", metavar="NAME", help="field holding the summary")
    group.add_argument("--gradient-accumulation-steps", type=int, default=1, metavar="N")
    group.add_argument("--warmup-ratio", type=float, default=0.1, metavar="X", help="share of steps warming up")
    group.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    group.add_argument("--max-source-length", type=int, metavar="N", help="document tokens read (default: all)")
    group.add_argument("--max-target-length", type=int, default=64, metavar="N", help="summary tokens")
    group.add_argument("--num-beams", type=int, default=4, metavar="N", help="beam width of the dev evaluation")
    group.add_argument("--gradient-checkpointing", action="store_true", help="less memory, more time")


def run_train_summarization(args) -> int:
    from .train_summarizer import train_summarizer

    defaults = dict(epochs=3, learning_rate=5e-5, batch_size=4)
    chosen = {k: getattr(args, k) for k in defaults if getattr(args, k) is not None}
    try:
        result = train_summarizer(
            args.train, args.validation, args.output, model=args.model, **{**defaults, **chosen},
            gradient_accumulation_steps=args.gradient_accumulation_steps, warmup_ratio=args.warmup_ratio,
            precision=args.precision, max_source_length=args.max_source_length,
            max_target_length=args.max_target_length, num_beams=args.num_beams, seed=args.seed,
            text_column=args.text_column, summary_column=args.summary_column,
            gradient_checkpointing=args.gradient_checkpointing,
        )
    except KeyboardInterrupt:
        return 130
    best = result.dev_metrics
    print(f"saved the best model (epoch {result.best_epoch:g}) to {result.output}")
    print(f"dev: ROUGE-1 {best['rouge1']:.4f}, ROUGE-2 {best['rouge2']:.4f}, ROUGE-L {best['rougeL']:.4f}, "
          f"ROUGE-Lsum {best['rougeLsum']:.4f} ({result.seconds:.0f} s)")
    return 0


def run_evaluate_summarization(args) -> int:
    from .summarizer import Summarizer

    summarizer = Summarizer.from_pretrained(args.model_dir, batch_size=args.batch_size)
    metrics = summarizer.evaluate(args.data, args.text_column, args.summary_column, **generation_options(args))
    print(json.dumps(metrics))
    return 0
