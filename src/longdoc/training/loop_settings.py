"""The settings of the training loop that every task and family shares (the `train` keyword
arguments and `longdoc train` flags of the same names):

    gradient_accumulation_steps, warmup_ratio, weight_decay, max_steps, early_stopping_patience,
    bf16, fp16, save_steps, save_total_limit, resume

A task may read some of them itself (bf16, and the summarizer's warm-up, decay and accumulation are
its own settings too); the loop applies the rest to every Trainer run over the stage's own values,
so a task that never heard of them still honours them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# the names a task's `options` may carry that belong to the loop (a task reads the ones it knows, too)
LOOP_SETTINGS = ("gradient_accumulation_steps", "warmup_ratio", "weight_decay", "max_steps", "early_stopping_patience",
                 "bf16", "fp16", "save_steps", "save_total_limit", "min_checkpoint_seconds", "resume", "checkpoints")


@dataclass(frozen=True)
class LoopSettings:
    gradient_accumulation_steps: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    max_steps: int | None = None  # the last stage stops after this many optimizer steps
    early_stopping_patience: int | None = None  # evaluations without improvement before a stage stops
    bf16: bool | None = None  # None: the task and the hardware decide
    fp16: bool | None = None  # CUDA only (loss scaling)
    save_steps: int | None = None  # a Trainer checkpoint every N steps (default: every epoch)
    save_total_limit: int = 2  # checkpoints kept per stage
    min_checkpoint_seconds: float = 60.0  # without save_steps: epoch checkpoints at most this often (0: each epoch)
    resume: bool = False  # continue from the last checkpoint of an interrupted run
    checkpoints: bool = True  # write Trainer checkpoints at all (cross-validation and search trials do not)

    @classmethod
    def from_options(cls, options: dict, device: str) -> "LoopSettings":
        """The loop's settings among `options`, checked (a ValueError naming the flag otherwise)."""
        given = {f.name: options[f.name] for f in fields(cls) if options.get(f.name) is not None}
        settings = cls(**given)
        settings.check(device)
        return settings

    def check(self, device: str) -> None:
        for name in ("gradient_accumulation_steps", "max_steps", "save_steps", "save_total_limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"--{flag(name)} must be a positive whole number, got {value}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"--early-stopping-patience must be 1 or more (evaluations without improvement before "
                             f"training stops), got {self.early_stopping_patience}")
        if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"--warmup-ratio is the share of steps warming up, from 0 to below 1; got "
                             f"{self.warmup_ratio}")
        if self.min_checkpoint_seconds < 0:
            raise ValueError(f"min_checkpoint_seconds must be 0 or more, got {self.min_checkpoint_seconds}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"--weight-decay must be 0 or more, got {self.weight_decay}")
        if self.bf16 and self.fp16:
            raise ValueError("give --bf16 or --fp16, not both")
        if self.fp16 and device != "cuda":
            raise ValueError("--fp16 needs a CUDA GPU (half precision with loss scaling); on a CPU use --bf16, which "
                             "runs fast where the CPU has bf16 instructions (AVX512-BF16, AMX)")

    def apply(self, arguments: dict, last_stage: bool) -> dict:
        """The TrainingArguments of one stage with these settings over the stage's own."""
        arguments = dict(arguments)
        if self.gradient_accumulation_steps is not None:
            arguments["gradient_accumulation_steps"] = self.gradient_accumulation_steps
        if self.warmup_ratio is not None:
            arguments["warmup_steps"] = self.warmup_ratio  # a float below 1 is a share of the steps
        if self.weight_decay is not None:
            arguments["weight_decay"] = self.weight_decay
        if self.max_steps is not None and last_stage:
            arguments["max_steps"] = self.max_steps
        if self.fp16:
            arguments.update(fp16=True, bf16=False)
        return arguments


def flag(name: str) -> str:
    return name.replace("_", "-")
