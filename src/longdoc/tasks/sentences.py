"""Sequential sentence classification: one label (or, multi-label, a set of labels) per sentence of a
document, read by a HAT with one segment per sentence so that segment i carries sentence i's label.

Data: `{"sentences": ["...", ...], "label": [one per sentence]}` lines. The metrics are those of
document classification taken over sentences (`metrics.sentences`). Everything else is the
classification task's: this task differs in what it reads and the head it asks for.
"""

from __future__ import annotations

import logging

from .base import is_record_file, read_text
from .classification import ClassificationTask

logger = logging.getLogger(__name__)


class SentencesTask(ClassificationTask):
    name = "sentences"
    aliases = ("sequential-sentence-classification", "sentence-classification")
    description = "a label per sentence, with --family hat"
    head = "sentences"
    default_family = "hat"
    pipeline = "longdoc.pipelines.sentences:SentenceClassifier"

    def read(self, path, options, require_targets=True):
        from ..data.documents import read_sentence_documents

        return read_sentence_documents(path, options.get("sentences_column") or "sentences",
                                       options.get("label_column") or "label", require_labels=require_targets)

    def inputs(self, examples):
        return [list(document.sentences) for document in examples]

    def label_space(self, documents, multi_label):
        from ..data.labels import sentence_label_space

        return sentence_label_space(documents, multi_label)

    def targets(self, space, documents):
        from ..data.labels import encode_sentence_labels

        return [encode_sentence_labels(space, d, "the training data") for d in documents]

    def _log_start(self, run, space):
        counts = [sum(len(d.sentences) for d in docs) for docs in (run.data.train, run.data.dev)]
        logger.info(
            f"{run.family.name} sentence classifier on {run.source}: {len(run.data.train)} training documents "
            f"({counts[0]} sentences) and {len(run.data.dev)} dev documents ({counts[1]} sentences), "
            f"{len(space.names)} labels ({space.problem_type.replace('_', ' ')})")

    def prediction_json(self, prediction, source, split=False):
        record = {"document": source, "labels": prediction.labels,
                  "scores": [None if s is None else {k: round(v, 6) for k, v in s.items()} for s in prediction.scores]}
        if split:
            record["sentences"] = prediction.sentences
        if prediction.unread:
            record["sentences_not_read"] = prediction.unread
        return record

    def evaluate_file(self, model_dir, path, options):
        classifier = self.load_pipeline(model_dir, options)
        columns = options.get("sentences_column") or "sentences", options.get("label_column") or "label"
        return classifier.evaluate(path, *columns, progress=options.get("progress", "predicting"))

    def fold_labels(self, examples, options):
        """A document's labels for stratifying: the set of its sentences' labels."""
        return [tuple(sorted({label for sentence in document.labels for label in sentence})) for document in examples]

    def run_predict(self, args, out) -> int:
        """A label per sentence: .jsonl/.csv files give lists of sentences (--sentences-column), any other
        file is one text, split into sentences (shown in the output)."""
        import json

        from ..data.documents import read_sentence_documents
        from ..pipelines.sentences import split_into_sentences

        if args.explain:
            raise ValueError("--explain applies to document classifiers; a sentence classifier labels every sentence")
        sources, documents, split = [], [], []
        for name in args.files:
            if is_record_file(name):
                for document in read_sentence_documents(name, args.sentences_column, require_labels=False):
                    sources.append(document.id or document.source)
                    documents.append(list(document.sentences))
                    split.append(False)
            else:
                sources.append(name)
                documents.append(split_into_sentences(read_text(name)))
                split.append(True)
        classifier = self.load_pipeline(args.model_dir, vars(args))
        predictions = classifier.predict(documents, progress="predicting")
        for source, prediction, was_split in zip(sources, predictions, split):
            out.print(json.dumps(self.prediction_json(prediction, source, split=was_split), ensure_ascii=False))
        return 0
