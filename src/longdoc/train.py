"""Training document classifiers on `transformers`' Trainer, for every family.

    from longdoc import train_classifier
    result = train_classifier("train.jsonl", "dev.jsonl", "my-model", family="segment", model="path/to/encoder")
    # one label per sentence ({"sentences": [...], "label": [...]} lines), on a HAT:
    train_classifier("train.jsonl", "dev.jsonl", "tagger", family="hat", task="sentences", model="path/to/encoder")

All data problems are found before any model is built. The Trainer runs the epochs, evaluates
on the dev file after each, and `SaveBest` writes the model (with its tokenizer) into the output
folder whenever the dev macro-F1 (over sentences, for the sentence task) improves. The folder is
replaced as a whole, with Ctrl-C held back while it is, so an interrupted run leaves the last saved
checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from transformers import Trainer, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import IntervalStrategy

from .data.documents import DataError, holds_sentence_lists, read_documents, read_sentence_documents
from .logs import quiet_trainer
from .models.segment_encoding import bf16_autocast_default
from .save_best import SaveBest as BestModelSaver
from .save_best import save_model_folder
from .tasks.classification import LabelSpace, classification_metrics, probabilities
from .tasks.families import FAMILIES, get_family
from .tasks.sentences import encode_sentence_labels, scored_sentences, sentence_label_space

logger = logging.getLogger(__name__)

BEST_METRIC = "macro_f1"
TRAINING_REPORT = "training_report.json"
# parameter names of the pretrained encoder in every family (HAT: hi_transformer.)
ENCODER_PREFIXES = ("encoder.", "longformer.", "hi_transformer.")
TASKS = ("classification", "sentences")


@dataclass
class TrainingResult:
    output: str
    family: str
    best_epoch: float | None
    dev_metrics: dict
    seconds: float
    history: list[dict] = field(default_factory=list)
    interrupted: bool = False
    probe: dict | None = None  # frozen segment training: the probe's C, its weight and the dev scores dev chose by
    best_stage: str | None = None  # "training", or "head warm-up" / "fine-tuning" when fine-tuning warmed the head up

    def best_when(self) -> str:
        """Where the saved model comes from: 'epoch 3 of 4', 'head warm-up epoch 16 of 40'."""
        stage = [h for h in self.history if h.get("stage") == self.best_stage]
        return f"{_stage_prefix(self.best_stage)}epoch {self.best_epoch:g} of {len(stage)}"


def _stage_prefix(stage: str | None) -> str:
    """'' for a one-stage training, else the stage's name and a space."""
    return "" if stage in (None, "training") else f"{stage} "


def train_classifier(
    train: str | os.PathLike,
    validation: str | os.PathLike,
    output: str | os.PathLike,
    family: str = "segment",
    model: str | os.PathLike | None = None,
    freeze_encoder: bool = False,
    epochs: int | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    seed: int = 42,
    multi_label: bool = False,
    text_column: str = "text",
    label_column: str = "label",
    chunk_size: int | None = None,
    stride: int | None = None,
    pooling: str | None = None,
    chunk_pooling: str | None = None,
    max_segments: int | None = None,
    max_length: int | None = None,
    threshold: float | None = None,
    gradient_checkpointing: bool = True,
    bf16: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    config_overrides: dict | None = None,
    head_warmup: bool = True,
    task: str = "classification",
    sentences_column: str = "sentences",
    layout: str | None = None,
    max_sentences: int | None = None,
    max_sentence_size: int | None = None,
    segmentation: str | None = None,
    truncate: bool = False,
) -> TrainingResult:
    """Train a `family` classifier on `train` (JSON lines or CSV), keep the best on `validation`,
    save it to `output`; returns the dev scores of the saved model. `config_overrides` sets other
    fields of the family's config (e.g. {"aggregator_layers": 2} for the segment classifier).

    Fine-tuning (no `freeze_encoder`) of a family that can read cached segment vectors runs in two
    stages unless `head_warmup` is False: the layers above the encoder first learn on the frozen
    encoder's vectors (the family's frozen defaults), then everything fine-tunes from the best of
    them at `learning_rate`. The fine-tuned model is kept only where it beats the warmed-up one.

    `family="hat"` converts `model` into a HAT (unless it is one) of `max_sentences` segments of
    `max_sentence_size` tokens with the `layout` of segment-wise / cross-segment layers; documents
    are cut by `segmentation` ("greedy" sentences packed into segments, or "uniform" chunks); a
    document with more segments is an error unless `truncate` (then a warning says how much is cut).
    `task="sentences"` (HAT only) trains one label per sentence on files of
    `{"sentences": [...], "label": [one per sentence]}` lines (`sentences_column`, `label_column`);
    each sentence is one segment and the dev metrics are over sentences."""
    start = time.perf_counter()
    if model is None:
        raise ValueError("give the encoder to start from: model='path/to/checkpoint' (--model)")
    handler = get_family(family)
    task = {"sequential-sentence-classification": "sentences", "sentence-classification": "sentences"}.get(task, task)
    if task == "classification" and "sentences" in handler.tasks and holds_sentence_lists(train, sentences_column,
                                                                                        text_column):
        logger.info(f"{train} holds lists of sentences with a label each: training sequential sentence classification "
                    f"(task='sentences')")
        task = "sentences"
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; classifiers train {', '.join(TASKS)}")
    if task not in handler.tasks:
        able = [name for name, f in FAMILIES.items() if task in f.tasks]
        raise ValueError(f"--task {task} is not trained by --family {family}: use --family {' or '.join(able)}")
    hat_options = dict(task=task, layout=layout, max_sentences=max_sentences, max_sentence_size=max_sentence_size,
                       segmentation=segmentation, truncate=truncate)
    handler.check_options(dict(chunk_size=chunk_size, stride=stride, pooling=pooling, chunk_pooling=chunk_pooling,
                               max_segments=max_segments, max_length=max_length, **hat_options))
    if task == "sentences":
        train_documents = read_sentence_documents(train, sentences_column, label_column)
        dev_documents = read_sentence_documents(validation, sentences_column, label_column)
        space = sentence_label_space(train_documents, multi_label)
        train_targets = [encode_sentence_labels(space, d, "the training data") for d in train_documents]
        dev_targets = [encode_sentence_labels(space, d, "the training data") for d in dev_documents]
        train_inputs, dev_inputs = ([list(d.sentences) for d in docs] for docs in (train_documents, dev_documents))
    else:
        train_documents = read_documents(train, text_column, label_column)
        dev_documents = read_documents(validation, text_column, label_column)
        space = LabelSpace.from_documents(train_documents, multi_label)
        train_targets = [space.encode(d, "the training data") for d in train_documents]
        dev_targets = [space.encode(d, "the training data") for d in dev_documents]
        train_inputs, dev_inputs = ([d.text for d in docs] for docs in (train_documents, dev_documents))
    handler.check_documents(str(model), train_inputs + dev_inputs, [d.source for d in train_documents + dev_documents],
                            dict(max_length=max_length, **hat_options))
    defaults = handler.defaults(freeze_encoder)
    epochs = defaults.epochs if epochs is None else epochs
    learning_rate = defaults.learning_rate if learning_rate is None else learning_rate
    batch_size = defaults.batch_size if batch_size is None else batch_size
    _check_positive(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file; give a folder for the model")
    if output.is_dir() and any(output.iterdir()) and not (output / "config.json").is_file():
        raise ValueError(f"--output {output} holds files that are not a model; give a new or empty folder")
    set_seed(seed)
    config_overrides = dict(config_overrides or {})
    if defaults.balanced_classes and not space.multi_label and task == "classification":
        config_overrides.setdefault("class_weights", balanced_class_weights(train_targets, len(space.names)))

    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = bf16_autocast_default(device) if bf16 is None else bf16
    options = dict(
        freeze_encoder=freeze_encoder, chunk_size=chunk_size, stride=stride, pooling=pooling,
        chunk_pooling=chunk_pooling, max_segments=max_segments, max_length=max_length, threshold=threshold,
        cache_dir=cache_dir, bf16=bf16, config_overrides=config_overrides or {}, **hat_options,
    )
    with tempfile.TemporaryDirectory(prefix="longdoc-train-") as work_dir:
        options["work_dir"] = work_dir
        classifier, tokenizer = handler.build(str(model), space, options)
        classifier.to(device)
        if task == "sentences":
            counts = [sum(len(d.sentences) for d in docs) for docs in (train_documents, dev_documents)]
            logger.info(f"{family} sentence classifier on {model}: {len(train_documents)} training documents "
                        f"({counts[0]} sentences) and {len(dev_documents)} dev documents ({counts[1]} sentences), "
                        f"{len(space.names)} labels ({space.problem_type.replace('_', ' ')})")
        else:
            logger.info(f"{family} classifier on {model}: {len(train_documents)} training and {len(dev_documents)} dev "
                        f"documents, {len(space.names)} labels ({space.problem_type.replace('_', ' ')})")
        train_items = handler.training_items(classifier, tokenizer, train_inputs, train_targets,
                                             {**options, "progress": "encoding training segments",
                                              "sources": [d.source for d in train_documents]})
        dev_items = handler.training_items(classifier, tokenizer, dev_inputs, dev_targets,
                                           {**options, "progress": "encoding dev segments",
                                            "sources": [d.source for d in dev_documents]})
        frozen = bool(getattr(classifier.config, "freeze_encoder", False))
        warmup = None
        if not frozen and head_warmup:
            warmup = [handler.head_warmup_items(classifier, tokenizer, items, {**options, "progress": progress})
                      for items, progress in ((train_items, "head warm-up: encoding training segments"),
                                              (dev_items, "head warm-up: encoding dev segments"))]
            warmup = None if warmup[0] is None else warmup
        if not frozen and device == "cpu":
            faster = ("--freeze-encoder trains in minutes instead" if _can_freeze(handler) else
                      "a segment family with --freeze-encoder trains in minutes instead")
            logger.info(f"fine-tuning the encoder on the CPU: every epoch reads {_item_tokens(train_items):,} tokens "
                        f"through the encoder and back ({epochs} epochs); {faster}")
        save_best = SaveBest(output, tokenizer, defaults.select_metric)
        fit = _Fit(handler, classifier, tokenizer, space, save_best, work_dir, device, seed)
        interrupted = False
        try:
            if warmup is not None:
                head = handler.head_warmup_defaults()
                logger.info(f"stage 1 of 2, head warm-up: the layers above the encoder learn on its segment vectors "
                            f"({head.epochs} epochs); then stage 2 fine-tunes everything from the best of them")
                save_best.stage = "head warm-up"
                with _encoder_frozen(classifier):
                    fit(*warmup, head.epochs, head.learning_rate, head.batch_size, head, bf16=False, checkpointing=False)
                if save_best.best_epoch is not None:
                    classifier.load_state_dict(handler.load(str(output)).state_dict())
                save_best.stage = "fine-tuning"
                logger.info("stage 2 of 2, fine-tuning the encoder and the layers above it")
                defaults = replace(defaults, head_learning_rate=None)  # the head is trained: no higher rate
            fit(train_items, dev_items, epochs, learning_rate, batch_size, defaults,
                bf16=bf16 and not frozen, checkpointing=gradient_checkpointing and not frozen)
        except KeyboardInterrupt:
            interrupted = True
            where = (f"the checkpoint of {save_best.best_when()} is intact at {output}"
                     if save_best.best_epoch else "no checkpoint was saved yet")
            logger.warning(f"interrupted: {where}")
        probe = None
        if frozen and not interrupted and save_best.best_epoch is not None:
            probe = _fit_probe(handler, output, tokenizer, train_items, dev_items, space, device)
    result = TrainingResult(
        output=str(output),
        family=family,
        best_epoch=save_best.best_epoch,
        best_stage=save_best.best_stage,
        dev_metrics=save_best.best_metrics,
        seconds=time.perf_counter() - start,
        history=save_best.history,
        interrupted=interrupted,
        probe=probe,
    )
    if probe is not None:
        result.dev_metrics = probe.pop("dev_metrics")
    if save_best.best_epoch is not None:
        report = {**result.__dict__, "task": task, "train_file": str(train), "validation_file": str(validation),
                  "model_source": str(model), "epochs": epochs, "learning_rate": learning_rate,
                  "batch_size": batch_size, "seed": seed}
        (output / TRAINING_REPORT).write_text(json.dumps(report, indent=1, default=str))
    if interrupted:
        raise KeyboardInterrupt
    return result


class _Fit:
    """Runs one stage of training: a Trainer over the given items, SaveBest keeping the best model."""

    def __init__(self, handler, classifier, tokenizer, space, save_best, work_dir, device, seed):
        self.handler, self.classifier, self.tokenizer, self.space = handler, classifier, tokenizer, space
        self.save_best, self.work_dir, self.device, self.seed = save_best, work_dir, device, seed

    def __call__(self, train_items, dev_items, epochs, learning_rate, batch_size, defaults, bf16, checkpointing):
        frozen = not any(p.requires_grad for n, p in self.classifier.named_parameters() if n.startswith(ENCODER_PREFIXES))
        args = TrainingArguments(
            output_dir=os.path.join(self.work_dir, "trainer"),
            num_train_epochs=epochs,
            learning_rate=learning_rate,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=max(batch_size, 16 if frozen else batch_size),
            warmup_steps=defaults.warmup_ratio,  # a float below 1 is a fraction of all steps
            weight_decay=defaults.weight_decay,
            eval_strategy=IntervalStrategy.EPOCH,
            save_strategy=IntervalStrategy.NO,  # SaveBest writes the output folder itself
            logging_strategy=IntervalStrategy.EPOCH,
            report_to="none",
            seed=self.seed,
            bf16=bf16,
            activation_checkpointing=checkpointing,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            disable_tqdm=frozen,  # epochs of seconds need no bar; SaveBest says one line per epoch
            use_cpu=self.device == "cpu",
        )
        dev_items = sorted(dev_items, key=self.handler.item_length)  # evaluation batches of alike lengths pad least
        trainer = DocumentTrainer(
            [self.handler.item_length(item) for item in train_items],
            model=self.classifier,
            args=args,
            train_dataset=train_items,
            eval_dataset=dev_items,
            data_collator=self.handler.collate(self.classifier, self.tokenizer),
            compute_metrics=lambda prediction: _metrics(prediction, self.space, self.classifier.config),
            optimizers=(_optimizer(self.classifier, learning_rate, defaults), None),
            callbacks=[self.save_best],
        )
        quiet_trainer(trainer)
        trainer.train()


def _fit_probe(handler, output: Path, tokenizer, train_items, dev_items, space, device) -> dict | None:
    """The saved frozen model with the family's linear probe fitted and mixed in as dev says, saved again;
    what dev chose, with the dev metrics of the model that now predicts (None: the family has no probe)."""
    model = handler.load(str(output)).to(device)
    collate = handler.collate(model, tokenizer)
    probe = handler.fit_probe(model, train_items, dev_items, collate)
    if probe is None:
        return None
    dev = probe["dev"]
    logger.info("linear probe on [mean; max] of the segment vectors (C %g by dev log-loss): dev macro-F1 / log-loss "
                "head %.4f / %.4f, probe %.4f / %.4f; dev chose probe weight %g (%.4f / %.4f)", probe["probe_C"],
                dev["head"]["macro_f1"], dev["head"]["log_loss"], dev["probe"]["macro_f1"], dev["probe"]["log_loss"],
                probe["probe_weight"], dev["chosen"]["macro_f1"], dev["chosen"]["log_loss"])
    save_model_folder(model, tokenizer, output)
    from .tasks.families import cached_item_logits

    gold = np.array([item["labels"] for item in dev_items])
    logits = cached_item_logits(model, dev_items, collate).numpy()
    probe["dev_metrics"] = _metrics(SimpleNamespace(predictions=logits, label_ids=gold), space, model.config)
    return probe


@contextmanager
def _encoder_frozen(model):
    """The encoder's parameters out of training for the block (restored after)."""
    encoder = [p for n, p in model.named_parameters() if n.startswith(ENCODER_PREFIXES) and p.requires_grad]
    for parameter in encoder:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in encoder:
            parameter.requires_grad_(True)


def _can_freeze(handler) -> bool:
    """Whether the family trains with a frozen encoder (--freeze-encoder)."""
    try:
        handler.defaults(True)
    except ValueError:
        return False
    return True


def balanced_class_weights(targets: list[int], num_labels: int) -> list[float]:
    """n / (labels x count) per label, as scikit-learn's "balanced": every class weighs as much in the loss
    (macro-F1 counts every class alike); a label without training documents gets weight 1."""
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=num_labels)
    return [float(len(targets) / (num_labels * c)) if c else 1.0 for c in counts]


def _check_positive(**values) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _optimizer(model, learning_rate: float, defaults) -> torch.optim.Optimizer:
    """AdamW; new layers learn at `head_learning_rate` when the family sets one, the encoder at `learning_rate`."""
    encoder, head = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (encoder if name.startswith(ENCODER_PREFIXES) else head).append(parameter)
    head_rate = max(learning_rate, defaults.head_learning_rate or learning_rate)
    groups = [g for g in ({"params": encoder, "lr": learning_rate}, {"params": head, "lr": head_rate}) if g["params"]]
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=defaults.weight_decay)


def _metrics(prediction, space: LabelSpace, config) -> dict:
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    gold = prediction.label_ids
    if np.ndim(logits) == 3:  # one row per segment: the sentence task, scored over the real sentences
        gold, logits = scored_sentences(logits, gold, space.multi_label)
    probs = probabilities(logits, space.multi_label)
    metrics = classification_metrics(gold, probs, space, getattr(config, "threshold", 0.5))
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}


class DocumentTrainer(Trainer):
    """Trainer whose training batches group documents of similar length (shuffled groups,
    `transformers`' LengthGroupedSampler), so short documents are not padded to the longest."""

    def __init__(self, lengths: list[int], *args, **kwargs):
        self.document_lengths = lengths
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, *args, **kwargs):
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=self.document_lengths)


class SaveBest(BestModelSaver):
    """The classifiers' saver: best dev macro-F1 (or lowest dev loss, where the family's defaults select on
    it), each epoch tagged with its training stage."""

    def __init__(self, output: Path, tokenizer, metric: str = BEST_METRIC):
        super().__init__(output, tokenizer, metric=metric, greater_is_better=metric != "loss")
        self.stage = "training"  # train_classifier names the stages of a fine-tuning with head warm-up

    @property
    def best_epoch(self) -> float | None:
        return None if self.best is None else self.best["epoch"]

    @property
    def best_stage(self) -> str | None:
        return None if self.best is None else self.best["stage"]

    @property
    def best_metrics(self) -> dict:
        return {k: v for k, v in (self.best or {}).items() if k not in ("stage", "epoch")}

    def best_when(self) -> str:
        """'epoch 3', or 'head warm-up epoch 16' when training ran in stages."""
        return f"{_stage_prefix(self.best_stage)}epoch {self.best_epoch:g}"

    def make_record(self, state, scores: dict) -> dict:
        return {"stage": self.stage, "epoch": state.epoch, **scores}

    def report(self, record: dict, saved: bool) -> None:
        epoch = f"{_stage_prefix(record['stage'])}epoch {record['epoch']:g}"
        scores = f"dev macro-F1 {record.get(BEST_METRIC, 0):.4f}, accuracy {record.get('accuracy', 0):.4f}" + (
            f", loss {record['loss']:.4f}" if self.metric == "loss" else "")
        if saved:
            logger.info("%s: %s -> saved to %s", epoch, scores, self.output)
        else:
            logger.info("%s: %s (best %s %.4f)", epoch, scores, self.metric.replace("_", "-"), self.best_score)


__all__ = ["DataError", "TrainingResult", "train_classifier", "save_model_folder"]


def _item_tokens(items: list[dict]) -> int:
    """Tokens the encoder reads for these training items (segments, one sequence, or HAT segments with
    their padding masked out)."""
    def tokens(item):
        if "segments" in item:
            return sum(len(s) for s in item["segments"])
        return sum(item["attention_mask"]) if "attention_mask" in item else len(item.get("input_ids", ()))

    return sum(tokens(item) for item in items)
