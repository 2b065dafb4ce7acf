"""convert(): the one entry point that turns a short checkpoint into a long one and verifies it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from .sources import source_architecture
from .registry import get_target
from .verification import VerificationReport


@dataclass
class ConversionReport:
    source: str
    output: str
    target: str
    source_model_type: str
    model_class: str  # class of the converted checkpoint
    source_max_tokens: int
    max_length: int
    settings: dict  # the target's attention settings (window, block sizes...)
    seconds: float
    fresh_weights: list[str] = field(default_factory=list)  # initialised afresh, not copied
    verification: VerificationReport | None = None

    def __str__(self) -> str:
        lines = [
            f"converted {self.source_model_type} checkpoint {self.source} ({self.source_max_tokens} tokens)",
            f"       -> {self.model_class} at {self.output} ({self.max_length} tokens, "
            + ", ".join(f"{k} {v}" for k, v in self.settings.items()) + f") in {self.seconds:.1f} s",
        ]
        if self.fresh_weights:
            lines.append(f"newly initialised (no source weights): {', '.join(self.fresh_weights)}")
        if self.verification is None:
            lines.append("not verified")
        else:
            lines.append(f"verified: {self.verification}")
        return "\n".join(lines)


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    to: str = "longformer",
    max_length: int = 4096,
    verify: bool = True,
    **settings,
) -> ConversionReport:
    """Convert the checkpoint at `src` (a folder or hub id) into a `to` model of `max_length`
    tokens saved with its tokenizer in `out`; with `verify`, check it reproduces the source.

    `settings` are the target's attention settings, each with a default: `window` (longformer);
    `block_size`, `sparse_block_size`, `sparsity_factor`, `sparsity_type`, `num_global_tokens` (lsg);
    `layout`, `max_sentences`, `max_sentence_size` (hat: `max_length` then only sets the default
    `max_sentences`, max_length / max_sentence_size)."""
    start = time.perf_counter()
    target = get_target(to)
    src, out = str(src), str(out)
    _check_paths(src, out)
    settings = target.check_settings(max_length, settings)
    source_config = _load(AutoConfig, src)
    arch = source_architecture(source_config)
    target.check_source(arch)
    source_max_tokens = arch.max_tokens(source_config)
    max_length = target.resolve_length(max_length, settings)
    target.check_length(max_length, source_max_tokens)

    tokenizer = _load(AutoTokenizer, src)
    source_model = arch.load(src, dtype="auto")
    model, fresh = target.convert_model(source_model, arch, tokenizer, max_length, settings)
    del source_model

    model.save_pretrained(out)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(out)

    report = ConversionReport(
        source=src,
        output=out,
        target=target.name,
        source_model_type=source_config.model_type,
        model_class=type(model).__name__,
        source_max_tokens=source_max_tokens,
        max_length=max_length,
        settings=settings,
        seconds=time.perf_counter() - start,
        fresh_weights=fresh,
    )
    if verify:
        report.verification = target.verify(src, out)
    return report


def _check_paths(src: str, out: str) -> None:
    looks_local = os.path.isabs(src) or src.startswith((".", "~")) or src.count("/") > 1
    if not os.path.exists(src) and looks_local:
        raise ValueError(f"source checkpoint {src!r} does not exist: give a checkpoint folder or a hub id")
    if os.path.exists(src) and not os.path.isdir(src):
        raise ValueError(f"source {src!r} is a file: give the checkpoint's folder (with config.json)")
    if os.path.isdir(src) and os.path.exists(out) and Path(src).resolve() == Path(out).resolve():
        raise ValueError(f"output folder {out!r} is the source folder: write the long model elsewhere")


def _load(auto_class, src: str):
    """from_pretrained, with a missing checkpoint reported as a ValueError that says what is missing."""
    try:
        return auto_class.from_pretrained(src)
    except OSError as error:
        what = auto_class.__name__.removeprefix("Auto").lower()
        raise ValueError(f"cannot read {what} from {src!r}: {error}") from error
