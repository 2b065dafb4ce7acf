"""What a conversion target (a long-model family) provides. The targets are registered in
`registry.py`; other families plug in with `register_target()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .sources import SourceArchitecture
from .verification import verify


class ConversionTarget(ABC):
    """One long-model family that short checkpoints can be converted into."""

    name: str
    description: str

    @abstractmethod
    def check_settings(self, max_length: int, settings: dict) -> dict:
        """The target's complete settings (defaults filled in); ValueError on settings it cannot build."""

    def check_source(self, arch: SourceArchitecture) -> None:
        """Raise ValueError when this target cannot take checkpoints of `arch`."""

    @abstractmethod
    def model_class(self, masked_lm: bool, arch: SourceArchitecture) -> type[PreTrainedModel]:
        """Class of the converted model: the encoder alone, or with its masked-LM head."""

    @abstractmethod
    def convert_model(
        self,
        source: PreTrainedModel,
        arch: SourceArchitecture,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        settings: dict,
    ) -> tuple[PreTrainedModel, list[str]]:
        """The long model built from `source`, and the names of weights it had to initialise afresh."""

    @abstractmethod
    def exact_length(self, config) -> int:
        """Longest input on which the long model must equal its source (its attention sees
        every token from every token)."""

    def resolve_length(self, max_length: int, settings: dict) -> int:
        """The long model's token length given the requested one and the checked settings."""
        return max_length

    def check_length(self, max_length: int, source_max_tokens: int) -> None:
        if max_length <= source_max_tokens:
            raise ValueError(
                f"max_length={max_length} is not larger than the {source_max_tokens} tokens the source already "
                f"takes: choose a longer max_length, e.g. {max(4096, 2 * source_max_tokens)}"
            )

    def verify(self, source: str, converted: str):
        """Check that the converted checkpoint reproduces its source (raises VerificationError)."""
        return verify(source, converted, to=self.name)

    def prepare_for_verification(self, model: PreTrainedModel) -> PreTrainedModel:
        """Switch off what the long model adds on purpose (e.g. LSG's global tokens), so that it must
        compute exactly what the source computes."""
        return model
