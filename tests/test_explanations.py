"""Explanations show the evidence: needle documents (filler sentences, two label-carrying sentences in
the middle of a later segment), a segment classifier on the packaged MiniLM (frozen), and the
sentences its explanations show, checked against a full forward pass without each sentence."""

from __future__ import annotations

import json
import random

import pytest
import torch

from longdoc import DocumentClassifier, train_classifier
from longdoc.assets import packaged_minilm
from longdoc.cli import main
from longdoc.data.segmentation import special_tokens
from longdoc.families.explanations import OcclusionExplainer, log_odds
from tiny_checkpoints import OFFICE_SENTENCES as FILLER

NEEDLES = {
    "billing": [
        "The customer was charged twice on the last invoice and demands a refund of the duplicate payment.",
        "Her credit card was billed for a subscription she had cancelled, so she wants the money returned.",
        "The invoice lists a late fee although the payment arrived on time, and the client disputes the charge.",
    ],
    "outage": [
        "The database server crashed at midnight and the website has been unreachable ever since.",
        "Users cannot log in because the authentication service went down after the network failure.",
        "The data centre lost power and every application hosted there stopped responding.",
    ],
}
CHUNK = 62  # tokens per segment (64 with [CLS] and [SEP]): about four filler sentences
SENTENCES = 16  # filler sentences per document: four or five segments


def needle_document(rng: random.Random, label: str | None) -> tuple[str, list[str]]:
    """Filler sentences with two of the label's needle sentences, side by side, after filler sentence
    7 to 11 (a later segment): the text and its needles (none for `label=None`)."""
    sentences = [rng.choice(FILLER) for _ in range(SENTENCES)]
    needles = rng.sample(NEEDLES[label], 2) if label else []
    at = rng.randint(7, 11)
    sentences[at:at] = needles
    return " ".join(sentences), needles


def write_split(path, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for index in range(count):
        label = sorted(NEEDLES)[index % 2]
        text, needles = needle_document(rng, label)
        records.append({"id": f"doc{index}", "text": text, "label": label, "needles": needles})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("needles")
    splits = {name: write_split(folder / f"{name}.jsonl", count, seed)
              for name, count, seed in (("train", 40, 0), ("dev", 12, 1), ("test", 12, 2))}
    out = folder / "model"
    train_classifier(folder / "train.jsonl", folder / "dev.jsonl", out, family="segment", model=str(packaged_minilm()),
                     freeze_encoder=True, chunk_size=CHUNK, epochs=30, learning_rate=3e-3, batch_size=8, bf16=False,
                     cache_dir=folder / "cache")
    classifier = DocumentClassifier.from_pretrained(out, device="cpu")
    return classifier, splits, folder


def test_explanations_show_the_needle_sentence(trained):
    classifier, splits, _ = trained
    test = splits["test"]
    predictions = classifier.predict([r["text"] for r in test], explain=True, top_segments=2, top_sentences=2,
                                     bf16=False)
    right = hits = 0
    for record, prediction in zip(test, predictions):
        (label,) = prediction.labels
        right += label == record["label"]
        best = prediction.explanation[label].sentences()[0]
        hits += best.text in record["needles"]
        assert best.score > 0  # removing it lowers the label's odds
    assert right >= 0.8 * len(test)
    assert hits >= 0.8 * len(test), [p.explanation for p in predictions]


def test_spans_slice_the_document_and_sentences_come_best_first(trained):
    classifier, splits, _ = trained
    text = splits["test"][0]["text"]
    (prediction,) = classifier.predict(text, explain=True, top_segments=3, top_sentences=3, bf16=False)
    for label, explanation in prediction.explanation.items():
        assert explanation.label == label and explanation.probability == prediction.scores[label]
        weights = [s.weight for s in explanation.segments]
        assert weights == sorted(weights, reverse=True) and len(weights) == 3
        for segment in explanation.segments:
            assert text[segment.start : segment.end] == segment.text
            scores = [s.score for s in segment.sentences]
            assert scores == sorted(scores, reverse=True) and 1 <= len(scores) <= 3
            for sentence in segment.sentences:
                assert text[sentence.start : sentence.end] == sentence.text
                assert sentence.start < segment.end and sentence.end > segment.start  # it overlaps its segment
        json.dumps(explanation.to_dict())


def full_forward_log_odds(classifier, text: str, removed: tuple[int, int] | None, multi_label=False) -> torch.Tensor:
    """The reference: the model's own windows over the document's tokens, less the tokens whose characters lie
    in `removed`, and the whole model run on them: encoder and head in one forward pass. (Re-tokenizing a
    window's characters instead would change a word the window's edge cuts.)"""
    model, tokenizer = classifier.model, classifier.tokenizer
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    prefix, suffix = special_tokens(tokenizer)
    segments = []
    for first, stop in classifier.family.segmentation(model.config).windows(len(ids)):
        kept = [ids[i] for i in range(first, stop)
                if not (removed and removed[0] <= offsets[i][0] and offsets[i][1] <= removed[1])]
        segments.append(prefix + kept + suffix)
    ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in segments], batch_first=True,
                                          padding_value=tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long(),
                       segment_mask=torch.ones(1, len(segments), dtype=torch.bool)).logits
    return log_odds(logits.float(), multi_label=multi_label)[0]


@pytest.fixture(params=[None, 40], ids=["adjacent", "overlapping"])
def stride(trained, request):
    """The model reads windows of 62 tokens every 62 (as trained) or every 40 tokens (overlapping)."""
    config = trained[0].model.config
    trained_stride = config.stride
    config.stride = request.param or trained_stride
    yield config.stride
    config.stride = trained_stride


def test_occlusion_scores_equal_a_full_forward_pass_without_the_sentence(trained, stride):
    """Every scored sentence of every segment, also those across segment edges or in two overlapping windows."""
    classifier, splits, _ = trained
    text = splits["test"][1]["text"]
    (prediction,) = classifier.predict(text, explain=True, top_segments=100, top_sentences=100, bf16=False)
    (label,) = prediction.labels
    label_id = classifier.space.names.index(label)
    base = full_forward_log_odds(classifier, text, None)
    explanation = prediction.explanation[label]
    crossing = 0
    for segment in explanation.segments:
        for sentence in segment.sentences:
            crossing += sentence.start < segment.start or sentence.end > segment.end
            drop = base[label_id] - full_forward_log_odds(classifier, text, (sentence.start, sentence.end))[label_id]
            assert sentence.score == pytest.approx(float(drop), abs=2e-3)
    assert crossing >= 1  # sentences across segment edges are scored whole
    assert len(explanation.segments) >= 4  # all of them


def test_multi_label_scores_are_logit_drops(trained):
    """A multi-label model (sigmoid: the log-odds are the logits), explained for both labels at once."""
    from longdoc.data.labels import LabelSpace
    from longdoc.families import get_family

    classifier, splits, _ = trained
    family = get_family("segment")
    torch.manual_seed(1)  # the head's random weights: not whatever earlier tests left in the generator
    model, tokenizer = family.build("classification", str(packaged_minilm()),
                                    {"head_config": LabelSpace(tuple(NEEDLES), True).config_fields(), "chunk_size": CHUNK})
    torch.manual_seed(0)
    torch.nn.init.normal_(model.label_attention.output_weight, std=0.25)  # an untrained head whose logits move
    multi = DocumentClassifier(model.eval(), tokenizer, family)
    text = splits["test"][2]["text"]
    predictions = family.predict(model, tokenizer, [text], explain=True, bf16=False)
    probs = torch.tensor(predictions.logits).sigmoid().numpy()
    (explanations,) = family.explain(model, tokenizer, [text], predictions, [list(NEEDLES)], probs, top_segments=1,
                                     top_sentences=2, bf16=False)
    base = full_forward_log_odds(multi, text, None, multi_label=True)
    scores = []
    for label_id, label in enumerate(model.config.id2label[i] for i in range(2)):
        (segment,) = explanations[label].segments
        assert len(segment.sentences) == 2
        for sentence in segment.sentences:
            without = full_forward_log_odds(multi, text, (sentence.start, sentence.end), multi_label=True)
            # fp32 noise of batched vs single encodings, amplified by the large head: relative 1e-3
            assert sentence.score == pytest.approx(float(base[label_id] - without[label_id]), rel=1e-3, abs=2e-3)
            scores.append(abs(sentence.score))
    assert max(scores) > 0.05  # the comparison is not between zeros


def test_without_a_needle_the_evidence_is_not_the_segment_start(trained):
    classifier, _, _ = trained
    at_start = 0
    for seed in range(7, 11):  # which filler sentences matter is the model's business: look at several documents
        text, _ = needle_document(random.Random(seed), None)
        (prediction,) = classifier.predict(text, explain=True, top_segments=1, top_sentences=2, bf16=False)
        (segment,) = next(iter(prediction.explanation.values())).segments
        shown = [s.start for s in segment.sentences]
        everyone = classifier.predict(text, explain=True, top_segments=1, top_sentences=100, bf16=False)
        (all_scored,) = next(iter(everyone[0].explanation.values())).segments
        in_order = sorted(s.start for s in all_scored.sentences)
        assert len(in_order) >= 4
        assert [s.start for s in all_scored.sentences[:2]] == shown  # the two that move the score most
        at_start += sorted(shown) == in_order[:2]
    assert at_start <= 1  # not simply the first sentences of the segment


def test_long_sentences_are_scored_in_pieces_and_capped(trained):
    classifier, _, _ = trained
    model, tokenizer = classifier.model, classifier.tokenizer
    text = " ".join(FILLER[:6]).replace(".", ",")  # one long sentence over two segments
    predictions = classifier.family.predict(model, tokenizer, [text], explain=True, bf16=False)
    explainer = OcclusionExplainer(model, tokenizer, classifier.family.segmentation(model.config), multi_label=False,
                                   bf16=False, max_unit_tokens=8, max_units=3)
    first_segment = {label: [(1.0, 0)] for label in classifier.space.names}
    explanation = explainer.explain(text, predictions.segment_vectors[0], first_segment, dict.fromkeys(first_segment, 0.5),
                                    ["billing"], top_segments=1, top_sentences=100)["billing"]
    (segment,) = explanation.segments
    assert segment.end - segment.start > 250  # a full segment of 62 tokens
    assert len(segment.sentences) == 3  # its 62 tokens in 8 pieces of 8, neighbours merged down to 3
    for sentence in segment.sentences:
        assert text[sentence.start : sentence.end] == sentence.text
        assert len(tokenizer(sentence.text, add_special_tokens=False)["input_ids"]) <= 3 * 8 + 2


def test_bad_explanation_sizes_are_refused(trained):
    classifier, splits, _ = trained
    for sizes in ({"top_segments": 0}, {"top_sentences": -1}):
        with pytest.raises(ValueError, match="--top-segments K >= 1"):
            classifier.predict(splits["test"][0]["text"], explain=True, **sizes)


def test_log_odds_are_those_of_the_probabilities():
    logits = torch.randn(5, 4, dtype=torch.float64) * 3
    p = logits.softmax(-1)
    assert torch.allclose(log_odds(logits, multi_label=False), (p / (1 - p)).log())
    assert torch.equal(log_odds(logits, multi_label=True), logits)  # sigmoid: the logit is the log-odds


def test_cli_prints_and_writes_the_evidence(trained, capsys):
    classifier, splits, folder = trained
    path = folder / "predict.jsonl"
    path.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in splits["test"][:3]))
    assert main(["predict", str(folder / "model"), str(path), "--explain", "--top-segments", "1"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 3
    for source, record in zip(splits["test"], records):
        (label,) = record["labels"]
        (segment,) = record["explanation"][label]["segments"]
        assert {"segment", "weight", "start", "end", "text", "sentences"} <= set(segment)
        for sentence in segment["sentences"]:
            assert source["text"][sentence["start"] : sentence["end"]] == sentence["text"]
    assert any(s["needles"][0] in captured.err for s in splits["test"][:3])
    assert "characters" in captured.err and "weight" in captured.err
