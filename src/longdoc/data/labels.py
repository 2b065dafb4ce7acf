"""The label space of labelled documents (one label, or a set of labels, per document or per
sentence) and its encoding into training targets; every problem is a `DataError` naming the line.

The label names, sorted, and whether several labels may apply are kept in a model's config
(`config_fields()`), so a saved model says what it predicts (`LabelSpace.from_config`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .documents import DataError, Document, SentenceDocument

IGNORED = -100  # single-label target of a segment that is not a sentence (padding); also the Trainer's padding
IGNORED_ROW = -1.0  # multi-label: the row of such a segment (HATForSequentialSentenceClassification skips it)

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"


@dataclass(frozen=True)
class LabelSpace:
    names: tuple[str, ...]
    multi_label: bool

    @classmethod
    def from_documents(cls, documents: list[Document], multi_label: bool) -> "LabelSpace":
        names = set()
        for document in documents:
            if not multi_label and len(document.labels) != 1:
                raise DataError(
                    f"{document.source}: {len(document.labels)} labels {list(document.labels)} for a single-label "
                    f"task; give one label per document, or train with --multi-label"
                )
            names.update(document.labels)
        if len(names) < 2:
            raise DataError(
                f"the training data has {len(names)} distinct label(s) {sorted(names)}: a classifier needs at least 2"
            )
        return cls(tuple(sorted(names)), multi_label)

    @classmethod
    def from_config(cls, config) -> "LabelSpace":
        names = tuple(config.id2label[i] for i in range(config.num_labels))
        return cls(names, config.problem_type == MULTI_LABEL)

    @property
    def problem_type(self) -> str:
        return MULTI_LABEL if self.multi_label else SINGLE_LABEL

    def config_fields(self) -> dict:
        return dict(
            num_labels=len(self.names),
            id2label=dict(enumerate(self.names)),
            label2id={name: i for i, name in enumerate(self.names)},
            problem_type=self.problem_type,
        )

    def encode(self, document: Document, what: str = "the model") -> int | list[float]:
        """Class index (single-label) or 0/1 vector (multi-label); unknown labels name the line."""
        unknown = [label for label in document.labels if label not in self.names]
        if unknown:
            raise DataError(
                f"{document.source}: label(s) {unknown} unknown to {what}, which knows {list(self.names)}; "
                f"remove the document or retrain with it in the training data"
            )
        if self.multi_label:
            present = set(document.labels)
            return [1.0 if name in present else 0.0 for name in self.names]
        if len(document.labels) != 1:
            raise DataError(f"{document.source}: {len(document.labels)} labels for a single-label model; give one")
        return self.names.index(document.labels[0])


# --- one label per sentence ---------------------------------------------------------------------


def sentence_label_space(documents: list[SentenceDocument], multi_label: bool) -> LabelSpace:
    """The labels of every sentence; single-label data needs exactly one label per sentence."""
    if not multi_label:
        for document in documents:
            for index, labels in enumerate(document.labels):
                if len(labels) != 1:
                    raise DataError(
                        f"{document.source}: sentence {index + 1} has {len(labels)} labels {list(labels)} for a "
                        f"single-label task; give one label per sentence, or train with --multi-label"
                    )
    return LabelSpace.from_documents(_sentences_as_documents(documents), multi_label)


def encode_sentence_labels(space: LabelSpace, document: SentenceDocument, what: str = "the model") -> list:
    """Per sentence: class index (single-label) or 0/1 row (multi-label); unknown labels name the line."""
    return [space.encode(Document("", labels, f"{document.source}: sentence {index + 1}"), what)
            for index, labels in enumerate(document.labels)]


def _sentences_as_documents(documents: list[SentenceDocument]) -> list[Document]:
    return [Document("", labels, f"{d.source}: sentence {i + 1}")
            for d in documents for i, labels in enumerate(d.labels)]


def pad_sentence_targets(targets: list, count: int, multi_label: bool, num_labels: int) -> list:
    """A document's targets for `count` segments: the ones it has, then ignored ones."""
    filler = [IGNORED_ROW] * num_labels if multi_label else IGNORED
    return list(targets[:count]) + [filler] * (count - len(targets))
