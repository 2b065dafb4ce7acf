"""Summarization: an encoder-decoder (LSG-BART, or any `transformers` seq2seq model) fine-tuned on
(text, summary) pairs; after each epoch it summarizes the dev file with beam search and the epoch
of the best dev ROUGE-L is kept. Its own command, `longdoc summarize`, streams summaries of files.

Data: `{"text": "...", "summary": "..."}` lines (`longdoc.data.pairs`). No torch at import.
"""

from __future__ import annotations

import json
import logging

from ..errors import DataError
from .base import RequestField, Stage, Task, add_option, iter_documents

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
SERVE_BATCH = 1024  # documents one generate() call may take when served (the token budget bounds a batch first)
MAX_SERVED_BEAMS = 32  # a served request's widest beam search
GENERATION_OPTIONS = ("num_beams", "length_penalty", "no_repeat_ngram_size", "min_length", "max_length")
# the settings of summarization training (library keyword arguments, and the CLI flags of the same names)
SETTINGS = ("gradient_accumulation_steps", "warmup_ratio", "precision", "max_source_length", "max_target_length",
            "num_beams", "text_column", "summary_column", "gradient_checkpointing", "weight_decay")
DEFAULT_SETTINGS = dict(gradient_accumulation_steps=1, warmup_ratio=0.1, precision="fp32", max_target_length=64,
                        num_beams=4, text_column="text", summary_column="summary", gradient_checkpointing=False,
                        weight_decay=0.01)


class SummarizationTask(Task):
    name = "summarization"
    description = "an encoder-decoder on text/summary pairs"
    head = "seq2seq"
    default_family = "lsg"
    primary_metric = "rougeL"
    pipeline = "longdoc.pipelines.summarization:Summarizer"
    serve_action = "summarize"
    commands = {"summarize": (
        "summarize documents with an encoder-decoder (LSG-BART) model",
        "Summarize each FILE: a .jsonl/.csv file gives one document per line, any other file is one document. "
        "Prints one JSON object per document as soon as its batch is done.")}

    # -- data ----------------------------------------------------------------------------------

    def read(self, path, options, require_targets=True):
        from ..data.pairs import read_pairs

        return read_pairs(path, options.get("text_column") or "text", options.get("summary_column") or "summary",
                          require_summaries=require_targets)

    # -- training ------------------------------------------------------------------------------

    def check_installed(self):
        from ..metrics.summarization import require_rouge_score

        require_rouge_score()  # before any training: every epoch ends with ROUGE on the dev file

    def check_options(self, family, options):
        settings = {**DEFAULT_SETTINGS, **{k: v for k, v in options.items() if v is not None}}
        if settings["precision"] not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {settings['precision']!r}")
        if settings["gradient_accumulation_steps"] <= 0:
            raise ValueError(f"--gradient-accumulation-steps must be positive, got "
                             f"{settings['gradient_accumulation_steps']}")

    def defaults(self, family, options):
        from ..families.base import TrainingDefaults

        return TrainingDefaults(epochs=3, learning_rate=5e-5, batch_size=4, select_metric=self.primary_metric,
                                warmup_ratio=options.get("warmup_ratio") or DEFAULT_SETTINGS["warmup_ratio"],
                                weight_decay=options.get("weight_decay", DEFAULT_SETTINGS["weight_decay"]))

    def settings(self, run) -> dict:
        settings = {**DEFAULT_SETTINGS, **{k: v for k, v in run.options.items() if v is not None}}
        if run.options.get("precision") is None:  # the loop's --bf16 / --fp16 say it too
            settings["precision"] = "bf16" if run.options.get("bf16") else "fp16" if run.options.get("fp16") else "fp32"
        return settings

    def features(self, run, examples, split):
        """Token ids of each pair's text (cut to max_source_length) and of its summary (the labels)."""
        settings, tokenizer = self.settings(run), run.tokenizer
        positions = run.model.config.max_position_embeddings
        source_length = min(settings.get("max_source_length") or positions, positions)
        items, truncated = [], 0
        for pair in examples:
            source = tokenizer(pair.text, truncation=True, max_length=source_length, return_token_type_ids=False)
            truncated += len(tokenizer(pair.text, verbose=False)["input_ids"]) > source_length
            target = tokenizer(text_target=pair.summary, truncation=True, max_length=settings["max_target_length"],
                               return_token_type_ids=False)
            items.append({**source, "labels": target["input_ids"]})
        if truncated:
            logger.info(f"note: {truncated} {'training' if split == 'train' else 'dev'} documents are longer than "
                        f"{source_length} tokens and are truncated")
        return items

    def collator(self, run):
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(run.tokenizer, model=run.model, label_pad_token_id=-100)

    def compute_metrics(self, run):
        import numpy as np

        from ..metrics.summarization import rouge_scores

        tokenizer = run.tokenizer

        def compute(prediction):
            predictions, labels = prediction.predictions, prediction.label_ids
            predictions = np.where(predictions < 0, tokenizer.pad_token_id, predictions)
            labels = np.where(labels < 0, tokenizer.pad_token_id, labels)
            decoded = [s.strip() for s in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
            references = [s.strip() for s in tokenizer.batch_decode(labels, skip_special_tokens=True)]
            return rouge_scores(decoded, references)

        return compute

    def stages(self, run):
        settings, model = self.settings(run), run.model
        if settings["gradient_checkpointing"]:
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
        train_items, dev_items = self.features(run, run.data.train, "train"), self.features(run, run.data.dev, "dev")
        accumulation = settings["gradient_accumulation_steps"]
        steps_per_epoch = -(-len(train_items) // (run.batch_size * accumulation))
        precision = settings["precision"]
        arguments = dict(gradient_accumulation_steps=accumulation, bf16=precision == "bf16", fp16=precision == "fp16",
                         logging_steps=max(1, steps_per_epoch // 5))
        return [Stage("training", train_items, dev_items, self.collator(run), self.compute_metrics(run), run.epochs,
                      run.learning_rate, run.batch_size, warmup_ratio=settings["warmup_ratio"],
                      weight_decay=settings["weight_decay"], arguments=arguments,
                      generation={"num_beams": settings["num_beams"], "max_length": settings["max_target_length"]})]

    def describe_scores(self, record, metric):
        nan = float("nan")
        rouge = " ".join(f"{k} {record.get(k, nan):.4f}" for k in ("rouge1", "rouge2", "rougeL"))
        train_loss = record["train_loss"] if record.get("train_loss") is not None else nan
        return f"train loss {train_loss:.4f}, dev loss {record.get('loss', nan):.4f}, {rouge}"

    # -- prediction ----------------------------------------------------------------------------

    def prediction_json(self, prediction, source):
        return {"source": source, "summary": prediction}

    # -- serving -------------------------------------------------------------------------------

    def serve_fields(self):
        return [RequestField("text", str, description="the document", min_length=1),
                RequestField("num_beams", int | None, None, "beam search width (default: the model's)", minimum=1,
                             maximum=MAX_SERVED_BEAMS),
                RequestField("length_penalty", float | None, None, "> 1 favours longer summaries", minimum=-100,
                             maximum=100),
                RequestField("no_repeat_ngram_size", int | None, None, "never repeat an n-gram of this size",
                             minimum=0, maximum=100),
                RequestField("min_length", int | None, None, "fewest tokens in the summary (at most what the "
                             "decoder writes)", minimum=0),
                RequestField("max_length", int | None, None, "most tokens in the summary (at most what the decoder "
                             "writes)", minimum=1),
                RequestField("truncate", bool, False, "summarize only the beginning of a document longer than the "
                             "model reads (as longdoc summarize does); the response then says truncated: true. "
                             "Without it such a document is refused (413)")]

    def serve_load(self, model_dir):
        # a batch is as large as the service's token budget makes it (the model's own sparsity may ask for one)
        return self.pipeline_class().from_pretrained(model_dir, batch_size=SERVE_BATCH)

    def serve_check(self, request, described):
        super().serve_check(request, described)
        most = described.get("max_summary_tokens")
        for name in ("min_length", "max_length"):
            if most is not None and request[name] is not None and request[name] > most:
                raise DataError(f"{name} {request[name]}: this model writes summaries of at most {most} tokens "
                                f"(its decoder's positions)")
        if None not in (request["min_length"], request["max_length"]) and request["min_length"] > request["max_length"]:
            raise DataError(f"min_length ({request['min_length']}) is larger than max_length ({request['max_length']})")

    def serve_limit(self, described, request, tokens):
        return None if request["truncate"] else super().serve_limit(described, request, tokens)

    def serve_batch_key(self, request):
        return tuple(request[name] for name in GENERATION_OPTIONS)

    def serve_predict(self, pipeline, requests):
        settings = pipeline.generation_settings(**{name: requests[0][name] for name in GENERATION_OPTIONS})
        texts = [r["text"] for r in requests]
        cut = [r["truncate"] and len(pipeline.tokenizer(t, verbose=False)["input_ids"]) > pipeline.max_source_length
               for r, t in zip(requests, texts)]
        return [{"summary": summary, **({"truncated": True} if was_cut else {})}
                for summary, was_cut in zip(pipeline.predict(texts, **settings), cut)]

    def serve_describe(self, pipeline):
        most = pipeline.max_source_length
        config = getattr(getattr(pipeline, "model", None), "config", None)
        positions = getattr(config, "max_decoder_position_embeddings", None) or getattr(config,
                                                                                      "max_position_embeddings", None)
        return {"max_document_tokens": most - pipeline.tokenizer.num_special_tokens_to_add(pair=False),
                "max_summary_tokens": positions,
                "reads": f"{most} tokens with its special tokens; truncate: true summarizes the beginning of a "
                         f"longer document"}

    # -- command line --------------------------------------------------------------------------

    def add_arguments(self, command, parser):
        if command == "train":
            group = parser.add_argument_group("summarization (--task summarization)")
            group.add_argument("--summary-column", default="summary", metavar="NAME", help="field holding the summary")
            group.add_argument("--precision", choices=list(PRECISIONS),
                               help="fp32 (default), or bf16 / fp16 (the same as --bf16 / --fp16)")
            group.add_argument("--max-source-length", type=int, metavar="N", help="document tokens read (default: all)")
            group.add_argument("--max-target-length", type=int, default=64, metavar="N", help="summary tokens")
            group.add_argument("--num-beams", type=int, default=4, metavar="N", help="beam width of the dev evaluation")
            group.add_argument("--gradient-checkpointing", action="store_true", help="less memory, more time")
        elif command == "evaluate":
            add_option(parser, "--text-column", default="text", metavar="NAME", help="field holding the text")
            add_option(parser, "--summary-column", default="summary", metavar="NAME",
                       help="summarization models: field holding the reference summary")
            add_option(parser, "--batch-size", type=int, default=2, metavar="N", help="summarization: documents per batch")
            add_generation_arguments(parser)
        elif command == "summarize":
            parser.add_argument("model_dir", metavar="MODEL")
            parser.add_argument("files", metavar="FILE", nargs="+")
            parser.add_argument("--text-column", default="text", metavar="NAME")
            parser.add_argument("--batch-size", type=int, default=2, metavar="N", help="documents generated together")
            parser.add_argument("--max-source-length", type=int, metavar="N", help="tokens read per document "
                                "(default: all the model takes)")
            add_generation_arguments(parser)

    def run(self, command, args, out):
        if command == "evaluate":
            return self.run_evaluate(args, out)
        if command == "summarize":
            return self.run_summarize(args, out)
        if command == "predict":
            raise ValueError(f"{args.model_dir} is a summarizer: summarize with `longdoc summarize {args.model_dir} "
                             f"FILE...`")
        return super().run(command, args, out)

    def training_options(self, args):
        return {"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                **{name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}}

    def training_summary(self, result):
        best = result.dev_metrics
        return [f"saved the best model (epoch {result.best_epoch:g}) to {result.output}",
                f"dev: ROUGE-1 {best['rouge1']:.4f}, ROUGE-2 {best['rouge2']:.4f}, ROUGE-L {best['rougeL']:.4f}, "
                f"ROUGE-Lsum {best['rougeLsum']:.4f} ({result.seconds:.0f} s)"]

    def evaluate_file(self, model_dir, path, options):
        summarizer = self.pipeline_class().from_pretrained(model_dir, batch_size=options.get("batch_size") or 2)
        return summarizer.evaluate(path, options.get("text_column") or "text",
                                   options.get("summary_column") or "summary",
                                   **{name: options.get(name) for name in GENERATION_OPTIONS})

    def run_summarize(self, args, out) -> int:
        summarizer = self.pipeline_class().from_pretrained(args.model_dir, batch_size=args.batch_size,
                                                           max_source_length=args.max_source_length)
        options = summarizer.generation_settings(**generation_options(args))  # bad options fail before any reading
        sources = []

        def texts():
            for source, text in iter_documents(args.files, args.text_column):
                sources.append(source)
                yield text

        for index, summary in enumerate(summarizer.summarize(texts(), **options)):
            out.print(json.dumps(self.prediction_json(summary, sources[index])))
        if summarizer.truncated:
            out.note(f"note: {summarizer.truncated} document(s) were longer than {summarizer.max_source_length} tokens "
                     f"and were truncated")
        return 0


def add_generation_arguments(parser) -> None:
    if "--num-beams" in parser._option_string_actions:
        return
    group = parser.add_argument_group("generation (defaults: the model's generation config)")
    group.add_argument("--num-beams", type=int, metavar="N", help="beam search width")
    group.add_argument("--length-penalty", type=float, metavar="X", help="> 1 favours longer summaries")
    group.add_argument("--no-repeat-ngram-size", type=int, metavar="N", help="never repeat an n-gram of this size")
    group.add_argument("--min-length", type=int, metavar="N", help="fewest tokens in a summary")
    group.add_argument("--max-length", type=int, metavar="N", help="most tokens in a summary")


def generation_options(args) -> dict:
    return {name: getattr(args, name) for name in GENERATION_OPTIONS}
