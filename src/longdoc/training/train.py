"""Training every task on `transformers`' Trainer, through one entry point.

    from longdoc.training import train
    result = train("classification", "train.jsonl", "dev.jsonl", "my-model", model="path/to/encoder",
                   family="segment", freeze_encoder=True)
    # the former entry points are this one with its task fixed:
    from longdoc import train_classifier, train_summarizer

The task supplies everything that is its own (reading and checking the data, the head it asks of
the family, features, collator, metrics and the primary metric with its direction, any stages or
after-training step); this module runs the same steps for all: settings and data are checked
before any model is built, the family builds the model in a temporary work folder, each stage is
one Trainer run that evaluates on dev after every epoch, and `SaveBest` writes the model (with its
tokenizer) to `output` whenever the primary metric improves. The folder is replaced as a whole,
on the main process only, with Ctrl-C held back while it is, so an interrupted run leaves the last
saved checkpoint intact. `training_report.json` in it records the run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import IntervalStrategy

from ..families import check_family, get_family
from ..logs import quiet_trainer
from ..runtime import default_device, is_main_process
from ..tasks import Stage, TrainingRun, get_task
from ..tasks.base import check_positive
from . import distributed
from .checkpoints import CheckpointState, RunCheckpoints, StageCheckpoints, checkpoint_arguments, run_fingerprint
from .loop_settings import LoopSettings
from .save_best import SaveBest, stage_prefix

logger = logging.getLogger(__name__)

TRAINING_REPORT = "training_report.json"


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
    task: str = "classification"

    def best_when(self) -> str:
        """Where the saved model comes from: 'epoch 3 of 4', 'head warm-up epoch 16 of 40'."""
        stage = [h for h in self.history if h.get("stage") == self.best_stage]
        return f"{stage_prefix(self.best_stage)}epoch {self.best_epoch:g} of {len(stage)}"


SummarizationResult = TrainingResult  # the former name of a summarizer's result


def train(
    task: str,
    train: str | os.PathLike,
    validation: str | os.PathLike,
    output: str | os.PathLike,
    model: str | os.PathLike | None = None,
    family: str | None = None,
    epochs: float | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    seed: int = 42,
    **options,
) -> TrainingResult:
    """Train a `task` model (a name or alias of `longdoc.tasks`) of `family` (default: the task's) from
    the checkpoint `model` on `train`, keep the best on `validation`, save it to `output`; returns the
    dev scores of the saved model. `options` are the task's and family's settings (see
    `train_classifier` and `train_summarizer` for theirs); epochs, learning rate and batch size
    default to the task's on that family."""
    start = time.perf_counter()
    chosen = get_task(task)
    chosen.check_installed()
    if model is None:
        raise ValueError("give the checkpoint to start from: model='path/to/checkpoint' (--model)")
    chosen = chosen.resolve(train, family, options)
    family_name = family or chosen.default_family
    check_family(family_name, chosen.head, task=chosen.name)
    handler = get_family(family_name)
    chosen.check_options(handler, options)
    data = chosen.read_training_data(train, validation, options)
    chosen.check_data(handler, str(model), data, options)
    device = default_device()
    loop = LoopSettings.from_options(options, device)
    defaults = chosen.defaults(handler, options)
    given = {name: getattr(loop, name) for name in ("warmup_ratio", "weight_decay") if getattr(loop, name) is not None}
    defaults = replace(defaults, **given)  # what the tasks' stages and optimizers read
    epochs = defaults.epochs if epochs is None else epochs
    learning_rate = defaults.learning_rate if learning_rate is None else learning_rate
    batch_size = defaults.batch_size if batch_size is None else batch_size
    check_positive(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size)
    output = Path(output)
    check_output(output)
    checkpoints = None  # Trainer checkpoints to resume from (beside `output`), unless told to write none
    if loop.checkpoints:
        fingerprint = run_fingerprint(chosen.name, family_name, model, train, validation, epochs, learning_rate,
                                      batch_size, seed, options)
        checkpoints = RunCheckpoints.start(output, fingerprint, loop.resume)
    elif loop.resume:
        raise ValueError("--resume needs checkpoints, and this run was told to write none (checkpoints=False)")
    distributed.prepare(device)  # when launched as several processes (docs/distributed.md): ranks > 0 quiet
    set_seed(seed)

    with tempfile.TemporaryDirectory(prefix="longdoc-train-") as work_dir:
        run = TrainingRun(chosen, handler, str(model), data, options, output, work_dir, device, seed,
                          epochs, learning_rate, batch_size, defaults, metric=defaults.select_metric,
                          greater_is_better=defaults.select_metric != "loss")
        # every rank builds (converts) in its own work folder before the process group exists: with one,
        # save_pretrained writes on rank 0 alone, and another machine cannot read rank 0's folder
        run.model, run.tokenizer = chosen.build(run)
        run.model.to(run.device)
        distributed.start(device)
        distributed.check_same_data(data.train, data.dev, dict(task=chosen.name, family=family_name, epochs=epochs,
                                    learning_rate=learning_rate, batch_size=batch_size, seed=seed, options=options))
        save_best = SaveBest(output, run.tokenizer, run.metric, run.greater_is_better, describe=chosen.describe_scores,
                             patience=loop.early_stopping_patience,
                             on_evaluation=options.get("on_evaluation"))  # a search's pruning hook
        interrupted, finished = False, {}
        try:
            with distributed.main_process_first():  # rank 0 fills the segment-vector cache, the others read it
                stages = chosen.stages(run)
            for number, stage in enumerate(stages, 1):
                stage_checkpoints = checkpoints.stage(number, stage.name) if checkpoints else None
                if stage_checkpoints is not None and stage_checkpoints.skip:
                    continue  # over before the checkpoint this run resumes from
                save_best.stage = stage.name
                if stage.announce:
                    logger.info(stage.announce)
                last = number == len(stages)
                if stage.context is None:
                    fit(stage, run, save_best, loop, last, stage_checkpoints)
                else:
                    with stage.context():
                        fit(stage, run, save_best, loop, last, stage_checkpoints)
                distributed.wait_for_everyone()  # rank 0 has saved: `after` and `finish` may read output
                if save_best.stopped:  # the evaluation hook stopped training: no later stage
                    break
                if stage.after is not None:
                    stage.after(save_best)
        except KeyboardInterrupt:
            interrupted = True
            where = (f"the checkpoint of {save_best.best_when()} is intact at {output}"
                     if save_best.best is not None else "no checkpoint was saved yet")
            resume = f"; --resume goes on from the last checkpoint in {checkpoints.folder}" if checkpoints else ""
            logger.warning(f"interrupted: {where}{resume}")
        if not interrupted and not save_best.stopped and save_best.best is not None:
            finished = chosen.finish(run, save_best)
    fields = dict(output=str(output), family=family_name, best_epoch=save_best.best_epoch,
                  dev_metrics=save_best.best_metrics, seconds=time.perf_counter() - start, history=save_best.history,
                  interrupted=interrupted, best_stage=save_best.best_stage, task=chosen.name)
    result = TrainingResult(**{**fields, **finished})
    if save_best.best is not None and is_main_process():
        report = {**asdict(result), "train_file": str(train), "validation_file": str(validation),
                  "model_source": str(model), "epochs": epochs, "learning_rate": learning_rate,
                  "batch_size": batch_size, "seed": seed}
        (output / TRAINING_REPORT).write_text(json.dumps(report, indent=1, default=str))
    if interrupted:
        raise KeyboardInterrupt
    if checkpoints is not None:
        checkpoints.remove()  # the run is over: its model is in `output`
    return result


_train = train  # the wrappers below name their training file `train`, as their callers do


def check_output(output: Path) -> None:
    """A new folder, an empty one, or a model folder to replace; anything else is refused."""
    check_output_folder(output, "the model", "a model", lambda folder: (folder / "config.json").is_file())


def check_output_folder(output: Path, for_what: str, whose: str, ours, hint: str = "") -> None:
    """`--output` must be a new or empty folder, or one that `ours(folder)` recognises as this command's
    own (to replace or go on with); a file, or a folder of other files, is refused: nothing is lost."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file; give a folder for {for_what}")
    if output.is_dir() and any(output.iterdir()) and not ours(output):
        raise ValueError(f"--output {output} holds files that are not {whose}; give a new or empty folder{hint}")


def fit(stage: Stage, run: TrainingRun, save_best: SaveBest, loop: LoopSettings | None = None,
        last: bool = True, checkpoints: StageCheckpoints | None = None) -> None:
    """One stage: a Trainer over its items, evaluating after each epoch, SaveBest keeping the best;
    the loop's settings (accumulation, max steps, fp16...) over the stage's own. With `checkpoints`,
    the Trainer writes resumable checkpoints into their folder, going on from `resume_from`."""
    if checkpoints is not None and checkpoints.finished:
        save_best.restore(checkpoints.state["save_best"])  # the stage was over: nothing left to train
        return
    loop = loop or LoopSettings()
    generate = stage.generation is not None
    arguments = trainer_arguments(stage, run, loop, last, checkpoints.folder if checkpoints else None)
    callbacks = [save_best]
    if checkpoints is not None:
        spacing = 0 if loop.save_steps else loop.min_checkpoint_seconds  # --save-steps: as asked
        callbacks.append(CheckpointState(save_best, checkpoints.state, loop.save_total_limit, spacing))  # after SaveBest
    trainer_class = Seq2SeqTrainer if generate else (LengthGroupedTrainer if stage.lengths else Trainer)
    extra = {"lengths": stage.lengths} if trainer_class is LengthGroupedTrainer else {}
    trainer = trainer_class(
        model=run.model,
        args=(Seq2SeqTrainingArguments if generate else TrainingArguments)(**arguments),
        train_dataset=stage.train_items,
        eval_dataset=stage.dev_items,
        data_collator=stage.collator,
        compute_metrics=stage.compute_metrics,
        optimizers=(stage.optimizer(run.model) if stage.optimizer else None, None),
        callbacks=callbacks,
        processing_class=run.tokenizer if generate else None,
        **extra,
    )
    quiet_trainer(trainer)
    resume_from = checkpoints.resume_from if checkpoints else None
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)


def trainer_arguments(stage: Stage, run: TrainingRun, loop: LoopSettings | None = None, last: bool = True,
                      checkpoint_dir: Path | None = None) -> dict:
    """The TrainingArguments fields of one stage: the stage's, then the loop's settings over them;
    with `checkpoint_dir`, resumable checkpoints written there."""
    arguments = dict(
        output_dir=os.path.join(run.work_dir, "trainer"),
        num_train_epochs=stage.epochs,
        learning_rate=stage.learning_rate,
        per_device_train_batch_size=stage.batch_size,
        per_device_eval_batch_size=stage.eval_batch_size or stage.batch_size,
        warmup_steps=stage.warmup_ratio,  # a float below 1 is a fraction of all steps
        weight_decay=stage.weight_decay,
        eval_strategy=IntervalStrategy.EPOCH,
        save_strategy=IntervalStrategy.NO,  # SaveBest writes the output folder itself
        report_to="none",
        seed=run.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=run.device == "cuda",
        use_cpu=run.device == "cpu",
        **stage.arguments,
    )
    if distributed.is_distributed():
        # find_unused: parameters outside the loss (the segment classifier's probe, fitted after training;
        # any a family or layout leaves out) would stop DDP at the second step; our models checkpoint
        # activations non-reentrantly, which DDP's search for unused parameters works with. Each rank's loss
        # stays its own batch's mean (DDP averages them): the Trainer's token averaging across devices would
        # multiply the loss by the world size for models whose forward takes **kwargs but ignores them
        arguments.update(ddp_backend=distributed.backend(run.device), ddp_find_unused_parameters=True,
                         average_tokens_across_devices=False)
    loop = loop or LoopSettings()
    arguments = loop.apply(arguments, last)
    if checkpoint_dir is not None:
        arguments.update(checkpoint_arguments(loop, checkpoint_dir))
    if stage.generation is not None:
        arguments.update(predict_with_generate=True, generation_num_beams=stage.generation.get("num_beams"),
                         generation_max_length=stage.generation.get("max_length"))
    return arguments


class LengthGroupedTrainer(Trainer):
    """Trainer whose training batches group items of similar length (shuffled groups,
    `transformers`' LengthGroupedSampler), so short documents are not padded to the longest."""

    def __init__(self, *args, lengths: list[int], **kwargs):
        self.item_lengths = lengths
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, *args, **kwargs):
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return EpochSeededLengthGroupedSampler(batch, self.item_lengths, self.args.data_seed or self.args.seed)


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """LengthGroupedSampler whose shuffle depends on the seed and the epoch alone (the Trainer calls
    `set_epoch`), not on the global RNG: a run resumed mid-epoch sees the batches the interrupted one saw."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + epoch)


# --- the entry points of each task, with their settings spelled out ----------------------------------


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
    **lsg_settings,
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
    `family="lsg"` converts it into an LSG model of `max_length` tokens (`lsg_settings`: block_size,
    sparse_block_size, sparsity_factor, sparsity_type, num_global_tokens).
    `task="sentences"` (HAT only) trains one label per sentence on files of
    `{"sentences": [...], "label": [one per sentence]}` lines (`sentences_column`, `label_column`);
    each sentence is one segment and the dev metrics are over sentences."""
    unknown = set(lsg_settings) - {"block_size", "sparse_block_size", "sparsity_factor", "sparsity_type",
                                   "num_global_tokens"}
    if unknown:
        raise TypeError(f"train_classifier() got unexpected keyword arguments {sorted(unknown)}")
    if get_task(task).name not in ("classification", "sentences"):
        raise ValueError(f"unknown task {task!r}; classifiers train classification, sentences")
    return _train(
        task, train, validation, output, model=model, family=family, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, freeze_encoder=freeze_encoder, multi_label=multi_label,
        text_column=text_column, label_column=label_column, chunk_size=chunk_size, stride=stride, pooling=pooling,
        chunk_pooling=chunk_pooling, max_segments=max_segments, max_length=max_length, threshold=threshold,
        gradient_checkpointing=gradient_checkpointing, bf16=bf16, cache_dir=cache_dir,
        config_overrides=config_overrides, head_warmup=head_warmup, sentences_column=sentences_column,
        layout=layout, max_sentences=max_sentences, max_sentence_size=max_sentence_size, segmentation=segmentation,
        truncate=truncate, **lsg_settings)


def train_summarizer(
    train: str | os.PathLike,
    validation: str | os.PathLike,
    output: str | os.PathLike,
    model: str | os.PathLike,
    epochs: float = 3,
    learning_rate: float = 5e-5,
    batch_size: int = 4,
    gradient_accumulation_steps: int = 1,
    warmup_ratio: float = 0.1,
    precision: str = "fp32",
    max_source_length: int | None = None,
    max_target_length: int = 64,
    num_beams: int = 4,
    seed: int = 42,
    text_column: str = "text",
    summary_column: str = "summary",
    gradient_checkpointing: bool = False,
    weight_decay: float = 0.01,
) -> TrainingResult:
    """Fine-tune the seq2seq model at `model` on (text, summary) pairs; keep the best dev ROUGE-L epoch
    (the dev file summarized with beam search of `num_beams`, summaries of `max_target_length` tokens)."""
    return _train(
        "summarization", train, validation, output, model=model, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, gradient_accumulation_steps=gradient_accumulation_steps,
        warmup_ratio=warmup_ratio, precision=precision, max_source_length=max_source_length,
        max_target_length=max_target_length, num_beams=num_beams, text_column=text_column,
        summary_column=summary_column, gradient_checkpointing=gradient_checkpointing, weight_decay=weight_decay)
