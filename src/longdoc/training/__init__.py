"""Training: one Trainer-based entry point for every task (`train`), and the safe best-model saver."""

from .save_best import SaveBest, save_model_folder
from .train import TrainingResult, train, train_classifier, train_summarizer

__all__ = ["SaveBest", "TrainingResult", "save_model_folder", "train", "train_classifier", "train_summarizer"]
