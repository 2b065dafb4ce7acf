"""Sequential sentence classification: one label (or, multi-label, a set of labels) per sentence of a
document, read by a HAT with one segment per sentence so that segment i carries sentence i's label.

Data: `{"sentences": ["...", ...], "label": [one per sentence]}` lines. The metrics are those of
document classification taken over sentences (`metrics.sentences`). Everything else is the
classification task's: this task differs in what it reads and the head it asks for.
"""

from __future__ import annotations

import logging

from ..errors import DataError
from .base import RequestField, is_record_file, read_text, without_key
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

    # -- serving -------------------------------------------------------------------------------

    def serve_fields(self):
        return [RequestField("text", str | None, None, "the document, split into sentences (the response then lists "
                             "them); or give sentences", min_length=1),
                RequestField("sentences", list[str] | None, None, "the document's sentences, labelled in order",
                             min_length=1)]

    def serve_check(self, request, described):
        text, sentences = request["text"], request["sentences"]
        if (text is None) == (sentences is None):
            raise DataError("give either text (split into sentences) or sentences (a list), not "
                            + ("both" if text is not None else "neither"))
        if text is not None and not text.strip():
            raise DataError("text is blank: give a document (it holds only white space)")
        if sentences is not None and not any(sentence.strip() for sentence in sentences):
            raise DataError("sentences are all blank: give at least one sentence with words")

    def serve_tokens(self, tokenizer, request):
        pieces = [request["text"]] if request["text"] is not None else request["sentences"]
        return sum(len(ids) for ids in tokenizer(pieces, add_special_tokens=False, verbose=False)["input_ids"])

    def serve_limit(self, described, request, tokens):
        most = described.get("max_sentences")
        if most is None:
            return None
        count = len(serve_sentences(request))
        if count > most:
            return (f"the document has {count} sentences and this model labels at most {most} per document "
                    f"(max_sentences; it was trained without --truncate): send fewer sentences")
        return None

    def serve_batch_key(self, request):
        return ()  # no options: every request to the model can share a batch

    def serve_predict(self, pipeline, requests):
        predictions = pipeline.predict([serve_sentences(r) for r in requests])
        return [without_key(self.prediction_json(p, None, split=r["sentences"] is None), "document")
                for p, r in zip(predictions, requests)]

    def serve_describe(self, pipeline):
        config = pipeline.model.config
        truncates = bool(getattr(config, "truncate_segments", False))
        return {"labels": list(pipeline.space.names), "multi_label": pipeline.space.multi_label,
                "max_sentences": None if truncates else config.max_sentences, "max_document_tokens": None,
                "reads": (f"the first {config.max_sentences} sentences (trained with --truncate; the response counts "
                          f"the others in sentences_not_read)" if truncates else
                          f"up to {config.max_sentences} sentences of {config.max_sentence_size} tokens")}

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


def serve_sentences(request: dict) -> list[str]:
    """A served request's sentences: its list, or its text split as `longdoc predict` splits a text file."""
    from ..pipelines.sentences import split_into_sentences

    return request["sentences"] if request["sentences"] is not None else split_into_sentences(request["text"])
