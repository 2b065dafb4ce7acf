"""Task heads shared by every family."""

from .classification import ClassificationHead, sequence_classification_loss
from .lm import LMHead
from .spans import span_loss

__all__ = ["ClassificationHead", "LMHead", "sequence_classification_loss", "span_loss"]
