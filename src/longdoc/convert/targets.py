"""What a conversion target (a long-model family) provides, and the registry `convert()` reads.

The built-in Longformer target is registered by `longdoc.convert`'s package init; other
families (LSG, ...) plug in with `register_target()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .sources import SourceArchitecture


class ConversionTarget(ABC):
    """One long-model family that short checkpoints can be converted into."""

    name: str
    description: str

    @abstractmethod
    def check_settings(self, max_length: int, window: int) -> None:
        """Raise ValueError on settings this family cannot build."""

    @abstractmethod
    def model_class(self, masked_lm: bool) -> type[PreTrainedModel]:
        """Class of the converted model: the encoder alone, or with its masked-LM head."""

    @abstractmethod
    def convert_model(
        self,
        source: PreTrainedModel,
        arch: SourceArchitecture,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        window: int,
    ) -> tuple[PreTrainedModel, list[str]]:
        """The long model built from `source`, and the names of weights it had to initialise afresh."""

    @abstractmethod
    def exact_length(self, config) -> int:
        """Longest input on which the long model must equal its source (its attention sees
        every token from every token)."""


_TARGETS: dict[str, ConversionTarget] = {}


def register_target(target: ConversionTarget) -> None:
    _TARGETS[target.name] = target


def available_targets() -> list[str]:
    return sorted(_TARGETS)


def get_target(name: str) -> ConversionTarget:
    if name not in _TARGETS:
        raise ValueError(
            f"unknown conversion target {name!r}; available: "
            + ", ".join(f"{t} ({_TARGETS[t].description})" for t in available_targets())
        )
    return _TARGETS[name]
