"""Document classification: one label (or, multi-label, a set of labels) per document, on any family
that builds a "classification" head (segment, chunk-pool, truncate, longformer, lsg, hat).

Data: JSON lines or CSV, `{"text": "...", "label": "..."}` (a list of labels with --multi-label).
The saved model is the one of the best dev macro-F1, or of the lowest dev loss where the family's
defaults select on it (the frozen segment families). Stages that belong to classification are
hooks here: fine-tuning first warms the head up on the frozen encoder's cached vectors, and a
frozen segment model gets a linear probe mixed in after training.

No torch at import: the command line reads this module to build its parser.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import replace

from .base import RequestField, Stage, Task, TrainingData, add_option, iter_documents, without_key

logger = logging.getLogger(__name__)

# parameter names of the pretrained encoder in every family (HAT: hi_transformer., LSG: bert., roberta., mpnet.)
ENCODER_PREFIXES = ("encoder.", "longformer.", "hi_transformer.", "bert.", "roberta.", "mpnet.")
# the settings of classification training (library keyword arguments, and the CLI flags of the same names)
SETTINGS = ("freeze_encoder", "multi_label", "text_column", "label_column", "chunk_size", "stride", "pooling",
            "chunk_pooling", "max_segments", "max_length", "threshold", "gradient_checkpointing", "bf16", "cache_dir",
            "config_overrides", "head_warmup", "sentences_column", "layout", "max_sentences", "max_sentence_size",
            "segmentation", "truncate", "block_size", "sparse_block_size", "sparsity_factor", "sparsity_type",
            "num_global_tokens")
LSG_SETTINGS = ("block_size", "sparse_block_size", "sparsity_factor", "sparsity_type", "num_global_tokens")
LIBRARY_ONLY = ("gradient_checkpointing", "bf16", "config_overrides")  # no flag of this task sets them


class ClassificationTask(Task):
    name = "classification"
    description = "a label (or labels, --multi-label) per document"
    head = "classification"
    default_family = "segment"
    primary_metric = "macro_f1"
    pipeline = "longdoc.pipelines.classification:DocumentClassifier"
    serve_action = "classify"

    # -- data ----------------------------------------------------------------------------------

    def read(self, path, options, require_targets=True):
        from ..data.documents import read_documents

        return read_documents(path, options.get("text_column") or "text", options.get("label_column") or "label",
                              require_labels=require_targets)

    def inputs(self, examples: list) -> list:
        """What the family reads of each example: the text."""
        return [document.text for document in examples]

    def label_space(self, documents: list, multi_label: bool):
        from ..data.labels import LabelSpace

        return LabelSpace.from_documents(documents, multi_label)

    def targets(self, space, documents: list) -> list:
        return [space.encode(d, "the training data") for d in documents]

    def resolve(self, train, family, options):
        """A file of sentence lists with a label each trains sequential sentence classification, on a family
        that builds it."""
        from ..data.documents import holds_sentence_lists
        from ..families import FAMILIES
        from .base import get_task

        sentences = get_task("sentences")
        spec = FAMILIES.get(family or self.default_family)
        if self is sentences or spec is None or sentences.head not in spec.heads:
            return self
        if holds_sentence_lists(train, options.get("sentences_column") or "sentences",
                                options.get("text_column") or "text"):
            logger.info(f"{train} holds lists of sentences with a label each: training sequential sentence "
                        f"classification (task='sentences')")
            return sentences
        return self

    # -- training ------------------------------------------------------------------------------

    def family_options(self, options: dict) -> dict:
        """The settings a family checks and builds with (its `head` among them)."""
        names = ("chunk_size", "stride", "pooling", "chunk_pooling", "max_segments", "max_length", "layout",
                 "max_sentences", "max_sentence_size", "segmentation", "truncate", *LSG_SETTINGS)
        return {"head": self.head, **{name: options.get(name) for name in names}}

    def check_options(self, family, options):
        family.check_options(self.family_options(options))
        if family.name != "lsg":
            given = [f"--{n.replace('_', '-')}" for n in LSG_SETTINGS if options.get(n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to --family lsg only; --family {family.name} does not "
                                 f"take them")

    def read_training_data(self, train, validation, options):
        documents = self.read(train, options), self.read(validation, options)
        space = self.label_space(documents[0], bool(options.get("multi_label")))
        return TrainingData(*documents, extra={"space": space, "targets": [self.targets(space, d) for d in documents]})

    def check_data(self, family, source, data, options):
        examples = data.train + data.dev
        family.check_documents(source, self.inputs(examples), [d.source for d in examples],
                               self.family_options(options))

    def defaults(self, family, options):
        return family.defaults(bool(options.get("freeze_encoder")))

    def build(self, run):
        space = run.data.extra["space"]
        overrides = dict(run.options.get("config_overrides") or {})
        if run.defaults.balanced_classes and not space.multi_label and self.head == "classification":
            overrides.setdefault("class_weights", balanced_class_weights(run.data.extra["targets"][0],
                                                                         len(space.names)))
        options = {**run.options, **self.family_options(run.options), "work_dir": run.work_dir,
                   "head_config": space.config_fields(), "config_overrides": overrides,
                   "freeze_encoder": bool(run.options.get("freeze_encoder"))}
        model, tokenizer = run.family.build(self.head, run.source, options)
        self._log_start(run, space)
        return model, tokenizer

    def _log_start(self, run, space) -> None:
        logger.info(f"{run.family.name} classifier on {run.source}: {len(run.data.train)} training and "
                    f"{len(run.data.dev)} dev documents, {len(space.names)} labels "
                    f"({space.problem_type.replace('_', ' ')})")

    def _family_settings(self, run) -> dict:
        """What the family's feature hooks read (the bf16 decision and the cache folder among them)."""
        return {**run.options, **self.family_options(run.options), "bf16": run.state["bf16"]}

    def features(self, run, examples, split):
        what = "training" if split == "train" else "dev"
        targets = run.data.extra["targets"][0 if split == "train" else 1]
        return run.family.training_items(run.model, run.tokenizer, self.inputs(examples), targets,
                                         {**self._family_settings(run), "progress": f"encoding {what} segments",
                                          "sources": [d.source for d in examples]})

    def collator(self, run):
        return run.family.collate(run.model, run.tokenizer)

    def compute_metrics(self, run):
        space, config = run.data.extra["space"], run.model.config
        return lambda prediction: classifier_metrics(prediction, space, config)

    def stages(self, run):
        """One stage; or, fine-tuning a family that can read cached segment vectors, a head warm-up on them
        first (the encoder frozen), then fine-tuning of everything from the best of it."""
        from ..runtime import bf16_autocast_default

        family, model, options = run.family, run.model, run.options
        bf16 = options.get("bf16")
        run.state["bf16"] = bf16_autocast_default(run.device) if bf16 is None else bf16
        train_items, dev_items = self.features(run, run.data.train, "train"), self.features(run, run.data.dev, "dev")
        run.state["items"] = train_items, dev_items  # the probe reads them after training
        frozen = bool(getattr(model.config, "freeze_encoder", False))
        checkpointing = options.get("gradient_checkpointing", True) is not False
        if not frozen and run.device == "cpu":
            faster = ("--freeze-encoder trains in minutes instead" if can_freeze(family) else
                      "a segment family with --freeze-encoder trains in minutes instead")
            logger.info(f"fine-tuning the encoder on the CPU: every epoch reads {item_tokens(train_items):,} tokens "
                        f"through the encoder and back ({run.epochs} epochs); {faster}")
        stages = []
        defaults = run.defaults
        if not frozen and options.get("head_warmup", True) is not False:
            settings = self._family_settings(run)
            warm = [family.head_warmup_items(model, run.tokenizer, items, {**settings, "progress": progress})
                    for items, progress in ((train_items, "head warm-up: encoding training segments"),
                                            (dev_items, "head warm-up: encoding dev segments"))]
            if warm[0] is not None:
                head = family.head_warmup_defaults()
                stages.append(self._stage(run, "head warm-up", *warm, head.epochs, head.learning_rate,
                                          head.batch_size, head, frozen=True, bf16=False, checkpointing=False))
                stages[-1].context = lambda: encoder_frozen(model)
                stages[-1].announce = (f"stage 1 of 2, head warm-up: the layers above the encoder learn on its segment "
                                       f"vectors ({head.epochs} epochs); then stage 2 fine-tunes everything from the "
                                       f"best of them")
                stages[-1].after = lambda save_best: self._reload_best(run, save_best)
                defaults = replace(defaults, head_learning_rate=None)  # the head is trained: no higher rate
        name = "fine-tuning" if stages else "training"
        stages.append(self._stage(run, name, train_items, dev_items, run.epochs, run.learning_rate, run.batch_size,
                                  defaults, frozen=frozen, bf16=run.state["bf16"] and not frozen,
                                  checkpointing=checkpointing and not frozen))
        if name == "fine-tuning":
            stages[-1].announce = "stage 2 of 2, fine-tuning the encoder and the layers above it"
        return stages

    def _stage(self, run, name, train_items, dev_items, epochs, learning_rate, batch_size, defaults, frozen, bf16,
               checkpointing) -> Stage:
        family = run.family
        return Stage(
            name, train_items, sorted(dev_items, key=family.item_length),  # dev batches of alike lengths pad least
            self.collator(run), self.compute_metrics(run), epochs, learning_rate, batch_size,
            eval_batch_size=max(batch_size, 16 if frozen else batch_size),
            warmup_ratio=defaults.warmup_ratio, weight_decay=defaults.weight_decay,
            arguments=dict(logging_strategy="epoch", bf16=bf16, activation_checkpointing=checkpointing,
                           remove_unused_columns=False,
                           disable_tqdm=frozen),  # epochs of seconds need no bar; SaveBest says one line per epoch
            lengths=[family.item_length(item) for item in train_items],
            optimizer=lambda model: encoder_and_head_optimizer(model, learning_rate, defaults))

    def _reload_best(self, run, save_best) -> None:
        if save_best.best is not None:
            run.model.load_state_dict(run.family.load(str(run.output), (self.head,)).state_dict())

    def finish(self, run, save_best):
        """A frozen model: the family's linear probe fitted and mixed in as dev says, saved again."""
        if not getattr(run.model.config, "freeze_encoder", False):
            return {}
        from types import SimpleNamespace

        import numpy as np

        model = run.family.load(str(run.output), (self.head,)).to(run.device)
        collate = run.family.collate(model, run.tokenizer)
        train_items, dev_items = run.state["items"]
        probe = run.family.fit_probe(model, train_items, dev_items, collate)
        if probe is None:
            return {}
        dev = probe["dev"]
        logger.info("linear probe on [mean; max] of the segment vectors (C %g by dev log-loss): dev macro-F1 / "
                    "log-loss head %.4f / %.4f, probe %.4f / %.4f; dev chose probe weight %g (%.4f / %.4f)",
                    probe["probe_C"], dev["head"]["macro_f1"], dev["head"]["log_loss"], dev["probe"]["macro_f1"],
                    dev["probe"]["log_loss"], probe["probe_weight"], dev["chosen"]["macro_f1"],
                    dev["chosen"]["log_loss"])
        save_best.save(model)
        gold = np.array([item["labels"] for item in dev_items])
        logits = probe.pop("dev_logits")
        metrics = classifier_metrics(SimpleNamespace(predictions=logits, label_ids=gold), run.data.extra["space"],
                                     model.config)
        return {"probe": probe, "dev_metrics": metrics}

    def describe_scores(self, record, metric):
        scores = f"dev macro-F1 {record.get('macro_f1', 0):.4f}, accuracy {record.get('accuracy', 0):.4f}"
        return scores + (f", loss {record['loss']:.4f}" if metric == "loss" else "")

    # -- prediction ----------------------------------------------------------------------------

    def prediction_json(self, prediction, source, explain=False):
        record = {"document": source, "labels": prediction.labels,
                  "scores": {k: round(v, 6) for k, v in prediction.scores.items()}}
        if explain:
            record["explanation"] = {label: e.to_dict() for label, e in prediction.explanation.items()}
        return record

    # -- serving -------------------------------------------------------------------------------

    def serve_fields(self):
        return [RequestField("text", str, description="the document", min_length=1),
                RequestField("explain", bool, False, "also the segments that drove each predicted label and, in "
                             "each, the sentences that carry it (scored by occlusion: a few times the cost)"),
                RequestField("top_segments", int, 3, "with explain: segments shown per label", minimum=1,
                             maximum=100),
                RequestField("top_sentences", int, 3, "with explain: sentences shown per segment", minimum=0,
                             maximum=100),
                RequestField("truncate", bool, False, "classify only the beginning of a document longer than the "
                             "model reads whole (as longdoc predict does, with a warning); the response then says "
                             "truncated: true. Without it such a document is refused (413)")]

    def serve_limit(self, described, request, tokens):
        if request["truncate"]:
            return None
        refusal = super().serve_limit(described, request, tokens)
        return refusal and f"{refusal}, or send \"truncate\": true to classify its beginning"

    def serve_batch_key(self, request):
        explain = (True, request["top_segments"], request["top_sentences"]) if request["explain"] else (False,)
        return (request["truncate"], *explain)

    def serve_predict(self, pipeline, requests):
        import warnings

        first = requests[0]
        cut = [False] * len(requests)
        if first["truncate"]:
            most = document_limit(pipeline)["max_document_tokens"]
            cut = [most is not None and self.serve_tokens(pipeline.tokenizer, r) > most for r in requests]
        with warnings.catch_warnings(), reading_beginnings(pipeline, any(cut)):
            warnings.filterwarnings("ignore", message=".*only their first")  # the answer says truncated: true
            predictions = pipeline.predict([r["text"] for r in requests], explain=first["explain"],
                                           top_segments=first["top_segments"], top_sentences=first["top_sentences"])
        return [{**without_key(self.prediction_json(p, None, explain=first["explain"]), "document"),
                 **({"truncated": True} if was_cut else {})} for p, was_cut in zip(predictions, cut)]

    def serve_describe(self, pipeline):
        space = pipeline.space
        return {"labels": list(space.names), "multi_label": space.multi_label, **document_limit(pipeline)}

    # -- command line --------------------------------------------------------------------------

    def add_arguments(self, command, parser):
        if command == "train":
            add_train_arguments(parser)
        elif command == "evaluate":
            add_column_arguments(parser)
            add_hat_reading_arguments(parser)
        elif command == "predict":
            add_option(parser, "--explain", action="store_true",
                       help="show the segments that drove each predicted label and, in each, the sentences that "
                       "carry it (scored by occlusion: a few times the cost of predicting)")
            add_option(parser, "--top-segments", type=int, default=3, metavar="K", help="segments shown per label")
            add_option(parser, "--top-sentences", type=int, default=3, metavar="K",
                       help="sentences shown per segment")
            add_option(parser, "--text-column", default="text", metavar="NAME")
            add_hat_reading_arguments(parser)

    def run(self, command, args, out):
        if command == "evaluate":
            return self.run_evaluate(args, out)
        if command == "predict":
            return self.run_predict(args, out)
        return super().run(command, args, out)

    def command_task(self, args, out):
        """Lines of sentence lists given to the document task (with --family hat or none) train the sentence task."""
        from ..data.documents import holds_sentence_lists
        from .base import get_task

        if (self.name == "classification" and args.family in (None, "hat")
                and holds_sentence_lists(args.train, args.sentences_column, args.text_column)):
            out.print(f"{args.train} holds lists of sentences with a label each ({args.sentences_column!r}, no "
                      f"{args.text_column!r}): training sequential sentence classification (--task sentences)")
            return get_task("sentences")
        return self

    def training_options(self, args):
        return {"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                **{name: getattr(args, name) for name in SETTINGS if name not in LIBRARY_ONLY and hasattr(args, name)}}

    def training_summary(self, result):
        scores = result.dev_metrics
        over = " (sentences)" if self.name == "sentences" else ""
        return [f"saved the best model ({result.best_when()}) to {result.output}",
                f"dev{over}: macro-F1 {scores['macro_f1']:.4f}, accuracy {scores['accuracy']:.4f}, micro-F1 "
                f"{scores['micro_f1']:.4f} ({result.seconds:.0f} s)"]

    def load_pipeline(self, model_dir, options: dict):
        """The classifier in `model_dir`, read as `options` (a command's arguments or settings) say."""
        return self.pipeline_class().from_pretrained(model_dir, truncate=options.get("truncate") or None)

    def evaluate_file(self, model_dir, path, options):
        """The pipeline's metrics on the file; with `from_vector_cache` (cross-validation), a frozen segment
        model reads its segment vectors from the cache instead of encoding them again (no speed figures then)."""
        classifier = self.load_pipeline(model_dir, options)
        text_column, label_column = options.get("text_column") or "text", options.get("label_column") or "label"
        if options.get("from_vector_cache") and getattr(classifier.model.config, "freeze_encoder", False):
            metrics = cached_evaluation(classifier, self.read(path, options), options)
            if metrics is not None:
                return metrics
        return classifier.evaluate(path, text_column, label_column, progress=options.get("progress", "predicting"))

    def fold_labels(self, examples, options):
        return [tuple(document.labels) for document in examples]

    def run_predict(self, args, out) -> int:
        import json

        sources, texts = [], []
        for source, text in iter_documents(args.files, args.text_column):
            sources.append(source)
            texts.append(text)
        classifier = self.load_pipeline(args.model_dir, vars(args))
        predictions = classifier.predict(texts, explain=args.explain, top_segments=args.top_segments,
                                         top_sentences=args.top_sentences, progress="predicting")
        for source, prediction in zip(sources, predictions):
            out.print(json.dumps(self.prediction_json(prediction, source, explain=args.explain), ensure_ascii=False))
            if args.explain:
                out.note(format_explanation(prediction))
        return 0


# --- command-line arguments (shared with the sentence task) -----------------------------------------


def add_train_arguments(parser) -> None:
    add_option(parser, "--freeze-encoder", action="store_true",
               help="train only the layers above a frozen encoder (segment vectors are cached: minutes on a CPU)")
    add_option(parser, "--no-head-warmup", dest="head_warmup", action="store_false",
               help="fine-tuning: skip the first stage that trains the layers above the frozen encoder on its "
               "cached segment vectors before everything fine-tunes")
    add_option(parser, "--multi-label", action="store_true", help="each document has a list of labels")
    add_column_arguments(parser)
    add_option(parser, "--chunk-size", type=int, metavar="N", help="tokens per segment, special tokens excluded")
    add_option(parser, "--stride", type=int, metavar="N", help="tokens between segment starts (default: chunk size)")
    add_option(parser, "--pooling", choices=["cls", "mean", "max", "first", "last", "attentive"],
               help="segment families: segment vector, [CLS] or mean of its tokens (default mean); hat: how the "
               "segments make the document vector, max, first, last or attentive (default max)")
    add_option(parser, "--chunk-pooling", choices=["mean", "max"], help="chunk-pool: how segment logits combine")
    add_option(parser, "--max-segments", type=int, metavar="N", help="most segments a document keeps")
    add_option(parser, "--max-length", type=int, metavar="N", help="longformer, lsg: tokens read (default 4096); "
               "hat: sets --max-sentences to N / --max-sentence-size")
    add_option(parser, "--threshold", type=float, metavar="P", help="multi-label: probability to predict a label")
    add_option(parser, "--cache-dir", metavar="DIR", help="frozen segment vectors (default ~/.cache/longdoc)")
    add_hat_training_arguments(parser)
    add_lsg_training_arguments(parser)


def add_hat_training_arguments(parser) -> None:
    if "--layout" in parser._option_string_actions:
        return
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


def add_lsg_training_arguments(parser) -> None:
    if "--block-size" in parser._option_string_actions:
        return
    lsg = parser.add_argument_group("lsg (--family lsg; a short encoder is converted first; defaults: 128, 128, 2, "
                                    "norm, 1)")
    lsg.add_argument("--block-size", type=int, metavar="N", help="tokens per local block")
    lsg.add_argument("--sparse-block-size", type=int, metavar="N", help="compressed keys on each side of a block")
    lsg.add_argument("--sparsity-factor", type=int, metavar="F", help="compression factor of the sparse keys")
    lsg.add_argument("--sparsity-type", metavar="TYPE",
                     help="norm, pooling, lsh, stride, block_stride, bos_pooling or none")
    lsg.add_argument("--num-global-tokens", type=int, metavar="G", help="learned global tokens prepended")


def add_column_arguments(parser) -> None:
    add_option(parser, "--text-column", default="text", metavar="NAME", help="field holding the text")
    add_option(parser, "--label-column", default="label", metavar="NAME", help="field holding the label(s)")


def add_hat_reading_arguments(parser) -> None:
    add_option(parser, "--truncate", action="store_true",
               help="HAT models: read only the first max_sentences segments (sentences) of a longer document, with a "
               "warning, even where the model was trained without --truncate")
    add_option(parser, "--sentences-column", default="sentences", metavar="NAME",
               help="sentence classifiers: field holding the list of sentences")


@contextmanager
def reading_beginnings(pipeline, cut: bool):
    """While `cut`, a HAT model reads the first segments of a longer document instead of refusing it (the other
    families read a document's beginning anyway, with a warning); the service runs one batch at a time."""
    config = pipeline.model.config
    before = getattr(config, "truncate_segments", None)
    if cut and before is False:
        config.truncate_segments = True
    try:
        yield
    finally:
        if before is not None:
            config.truncate_segments = before


def document_limit(pipeline) -> dict:
    """{"max_document_tokens", "reads"}: the most tokens (no special tokens) a document classifier reads whole,
    and how it reads them; None where it reads any length or cuts by design (truncate; HAT trained with
    --truncate). A HAT's limit is an upper bound: its greedy segments of whole sentences may hold fewer."""
    family, config, tokenizer = pipeline.family, pipeline.model.config, pipeline.tokenizer
    name = getattr(family, "name", None)
    if name in ("longformer", "lsg"):
        window = family.max_length(pipeline.model, tokenizer)
        return {"max_document_tokens": window - tokenizer.num_special_tokens_to_add(pair=False),
                "reads": f"one window of {window} tokens"}
    if name in ("segment", "chunk-pool"):
        cut = family.segmentation(config)
        most = (config.max_segments - 1) * cut.stride + cut.chunk_size
        return {"max_document_tokens": most, "reads": f"up to {config.max_segments} segments of {cut.chunk_size} "
                f"tokens, {cut.stride} apart"}
    if name == "hat" and not getattr(config, "truncate_segments", False):
        return {"max_document_tokens": config.max_sentences * config.max_sentence_size,
                "reads": f"up to {config.max_sentences} segments of {config.max_sentence_size} tokens"}
    reads = {"truncate": f"only the first {getattr(config, 'chunk_size', '?')} tokens (the truncation baseline)",
             "hat": f"the first {getattr(config, 'max_sentences', '?')} segments (trained with --truncate)"}
    return {"max_document_tokens": None, "reads": reads.get(name, "documents of any length")}


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


# --- training helpers ---------------------------------------------------------------------------------


def classifier_metrics(prediction, space, config) -> dict:
    """The numeric classification metrics of a Trainer prediction (document or, (D, N, L) logits, sentence)."""
    import numpy as np

    from ..metrics.classification import classification_metrics, probabilities
    from ..metrics.sentences import scored_sentences

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    gold = prediction.label_ids
    if np.ndim(logits) == 3:  # one row per segment: the sentence task, scored over the real sentences
        gold, logits = scored_sentences(logits, gold, space.multi_label)
    probs = probabilities(logits, space.multi_label)
    metrics = classification_metrics(gold, probs, space, getattr(config, "threshold", 0.5))
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}


def cached_evaluation(classifier, documents: list, options: dict) -> dict | None:
    """The classification metrics of a frozen-encoder model whose inputs are cached segment vectors
    (`options`: cache_dir, bf16); None for a family that caches none."""
    from ..families.segment import cached_item_logits
    from ..metrics.classification import classification_metrics, probabilities

    model, tokenizer, family, space = classifier.model, classifier.tokenizer, classifier.family, classifier.space
    gold = [space.encode(d) for d in documents]
    settings = {"cache_dir": options.get("cache_dir"), "bf16": options.get("bf16"),
                "progress": options.get("progress", "encoding test segments")}
    items = family.training_items(model, tokenizer, [d.text for d in documents], gold, settings)
    if not items or "segment_embeddings" not in items[0]:
        return None
    logits = cached_item_logits(model, items, family.collate(model, tokenizer)).numpy()
    metrics = classification_metrics(gold, probabilities(logits, space.multi_label), space, classifier.threshold)
    return {**metrics, "from_vector_cache": True}


def balanced_class_weights(targets: list[int], num_labels: int) -> list[float]:
    """n / (labels x count) per label, as scikit-learn's "balanced": every class weighs as much in the loss
    (macro-F1 counts every class alike); a label without training documents gets weight 1."""
    import numpy as np

    counts = np.bincount(np.asarray(targets, dtype=int), minlength=num_labels)
    return [float(len(targets) / (num_labels * c)) if c else 1.0 for c in counts]


def encoder_and_head_optimizer(model, learning_rate: float, defaults):
    """AdamW; new layers learn at `head_learning_rate` when the family sets one, the encoder at `learning_rate`."""
    import torch

    encoder, head = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (encoder if name.startswith(ENCODER_PREFIXES) else head).append(parameter)
    head_rate = max(learning_rate, defaults.head_learning_rate or learning_rate)
    groups = [g for g in ({"params": encoder, "lr": learning_rate}, {"params": head, "lr": head_rate}) if g["params"]]
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=defaults.weight_decay)


@contextmanager
def encoder_frozen(model):
    """The encoder's parameters out of training for the block (restored after)."""
    encoder = [p for n, p in model.named_parameters() if n.startswith(ENCODER_PREFIXES) and p.requires_grad]
    for parameter in encoder:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in encoder:
            parameter.requires_grad_(True)


def can_freeze(family) -> bool:
    """Whether the family trains with a frozen encoder (--freeze-encoder)."""
    try:
        family.defaults(True)
    except ValueError:
        return False
    return True


def item_tokens(items: list[dict]) -> int:
    """Tokens the encoder reads for these training items (segments, one sequence, or HAT segments with
    their padding masked out)."""
    def tokens(item):
        if "segments" in item:
            return sum(len(s) for s in item["segments"])
        return sum(item["attention_mask"]) if "attention_mask" in item else len(item.get("input_ids", ()))

    return sum(tokens(item) for item in items)

