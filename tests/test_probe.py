"""The linear probe inside the segment classifier: its folded weights, the head/probe mixture, saving it,
and frozen training at the defaults that fits it and mixes it in by dev."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from longdoc import DocumentClassifier, SegmentClassifier, train_classifier
from longdoc.models.segment_classifier import pooled_mean_max
from longdoc.families.segment import _fold_probe
from tiny_checkpoints import tiny_bert, write_documents


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("enc") / "bert")


def model_and_batch(encoder_dir, num_labels, problem_type="single_label_classification", seed=0):
    torch.manual_seed(seed)
    model = SegmentClassifier.from_encoder(str(encoder_dir), num_labels=num_labels, chunk_size=14, max_segments=8,
                                           problem_type=problem_type).eval()
    vectors = torch.randn(40, 7, model.config.hidden_size) + torch.randn(40, 1, 1)  # documents differ in level
    counts = torch.randint(1, 8, (40,))
    mask = torch.arange(7)[None, :] < counts[:, None]  # padded, lengths 1..7
    vectors[~mask] = 0.0
    return model, vectors, mask


@pytest.mark.parametrize("num_labels", [2, 3])
def test_folded_probe_gives_the_sklearn_probabilities(encoder_dir, num_labels):
    model, vectors, mask = model_and_batch(encoder_dir, num_labels)
    features = pooled_mean_max(vectors.double(), mask).numpy()
    labels = np.arange(40) % num_labels
    scaler = StandardScaler().fit(features)
    fit = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(features), labels)
    _fold_probe(model.probe, fit, scaler, num_labels)
    with torch.no_grad():
        head = model(segment_embeddings=vectors, segment_mask=mask).logits
        model.config.probe_weight = 1.0
        probe_only = model(segment_embeddings=vectors, segment_mask=mask).logits
        model.config.probe_weight = 0.25
        mixed = model(segment_embeddings=vectors, segment_mask=mask).logits
    expected = fit.predict_proba(scaler.transform(features))
    np.testing.assert_allclose(probe_only.softmax(-1).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(mixed.exp().numpy(), 0.75 * head.softmax(-1).numpy() + 0.25 * expected, atol=1e-5)
    assert not np.allclose(head.softmax(-1).numpy(), expected, atol=1e-2)  # the head alone is something else


def test_multi_label_mixture_is_the_logit_of_the_mixed_sigmoids(encoder_dir):
    model, vectors, mask = model_and_batch(encoder_dir, 3, "multi_label_classification")
    with torch.no_grad():
        head = model(segment_embeddings=vectors, segment_mask=mask).logits
        model.config.probe_weight = 0.5
        mixed = model(segment_embeddings=vectors, segment_mask=mask).logits
        probe = model.probe(pooled_mean_max(vectors, mask))
    expected = 0.5 * torch.sigmoid(head) + 0.5 * torch.sigmoid(probe)
    torch.testing.assert_close(torch.sigmoid(mixed), expected, atol=1e-6, rtol=1e-5)


def test_probe_weight_is_checked(encoder_dir):
    with pytest.raises(ValueError, match=r"probe_weight=1.5 must lie in \[0, 1\]"):
        SegmentClassifier.from_encoder(str(encoder_dir), num_labels=2, chunk_size=14, probe_weight=1.5)
    with pytest.raises(ValueError, match="method='segment' only"):
        SegmentClassifier.from_encoder(str(encoder_dir), num_labels=2, chunk_size=14, method="chunk-pool",
                                       probe_weight=0.5)


def test_save_and_load_keep_the_mixed_predictions(encoder_dir, tmp_path):
    model, vectors, mask = model_and_batch(encoder_dir, 3)
    torch.nn.init.normal_(model.probe.weight)
    model.config.probe_weight = 0.5
    model.save_pretrained(tmp_path / "m")
    loaded = SegmentClassifier.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.probe_weight == 0.5
    with torch.no_grad():
        torch.testing.assert_close(loaded(segment_embeddings=vectors, segment_mask=mask).logits,
                                   model(segment_embeddings=vectors, segment_mask=mask).logits)


@pytest.fixture(scope="module")
def few_documents(tmp_path_factory):
    """Few training documents: where the head overfits and the default must not fall below the probe."""
    folder = tmp_path_factory.mktemp("data")
    return {split: write_documents(folder / f"{split}.jsonl", n, seed) for split, n, seed in
            (("train", 12, 0), ("dev", 16, 1), ("test", 8, 2))}


@pytest.fixture(scope="module")
def frozen_at_defaults(encoder_dir, few_documents, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "segment"
    result = train_classifier(few_documents["train"], few_documents["dev"], out, family="segment",
                              model=str(encoder_dir), freeze_encoder=True, chunk_size=14,
                              cache_dir=tmp_path_factory.mktemp("cache"))
    return out, result


def test_frozen_training_fits_the_probe_and_dev_picks_the_mix(frozen_at_defaults):
    out, result = frozen_at_defaults
    probe = result.probe
    assert probe["probe_C"] in (0.01, 0.1, 1.0, 10.0) and probe["probe_weight"] in (0.0, 0.5, 1.0)
    dev = probe["dev"]
    # the chosen mix has the lowest dev log-loss of the candidates, so it is never worse than head or probe
    assert dev["chosen"]["log_loss"] <= min(dev["head"]["log_loss"], dev["probe"]["log_loss"]) + 1e-9
    assert dev["chosen"]["macro_f1"] >= dev["probe"]["macro_f1"], dev  # 12 training documents: not below the probe
    report = json.loads((out / "training_report.json").read_text())
    assert report["probe"]["probe_weight"] == probe["probe_weight"]
    saved = SegmentClassifier.from_pretrained(out)
    assert saved.config.probe_weight == probe["probe_weight"]
    assert result.dev_metrics["macro_f1"] == pytest.approx(dev["chosen"]["macro_f1"])


def test_frozen_default_is_used_and_explained(frozen_at_defaults, few_documents):
    out, result = frozen_at_defaults
    classifier = DocumentClassifier.from_pretrained(out)
    assert classifier.model.config.probe_weight == result.probe["probe_weight"]
    metrics = classifier.evaluate(few_documents["dev"])
    assert metrics["macro_f1"] == pytest.approx(result.dev_metrics["macro_f1"], abs=1e-6)
    text = json.loads(open(few_documents["test"]).readline())["text"]
    (prediction,) = classifier.predict(text, explain=True, top_segments=1, top_sentences=1, bf16=False)
    (label,) = prediction.labels
    assert prediction.explanation[label].segments  # explanations run on the mixed model


def test_fine_tuned_and_old_models_keep_the_head_alone(encoder_dir, tmp_path):
    model, vectors, mask = model_and_batch(encoder_dir, 3)
    assert model.config.probe_weight == 0.0
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("probe.")}  # saved before the probe
    model.save_pretrained(tmp_path / "old", state_dict=state)
    loaded = SegmentClassifier.from_pretrained(tmp_path / "old").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(segment_embeddings=vectors, segment_mask=mask).logits,
                                   model(segment_embeddings=vectors, segment_mask=mask).logits)


def test_probe_segment_weights_are_its_leave_one_out_drops(encoder_dir):
    """A probe-only model weighs each segment by the drop of the label's log-probability without it."""
    model, vectors, mask = model_and_batch(encoder_dir, 3)
    torch.nn.init.normal_(model.probe.weight)
    model.config.probe_weight = 1.0
    with torch.no_grad():
        weights = model(segment_embeddings=vectors, segment_mask=mask, output_attentions=True).label_attentions
        for row in range(4):
            n = int(mask[row].sum())
            real = vectors[row : row + 1, :n]
            full = model.probe(pooled_mean_max(real, torch.ones(1, n, dtype=torch.bool))).log_softmax(-1)[0]
            drops = []
            for left_out in range(n):
                keep = [i for i in range(n) if i != left_out] or [left_out]  # a lone segment: nothing to drop
                rest = real[:, keep]
                without = model.probe(pooled_mean_max(rest, torch.ones(1, len(keep), dtype=torch.bool)))
                drops.append(full - without.log_softmax(-1)[0] if n > 1 else torch.zeros(3))
            torch.testing.assert_close(torch.stack(drops, 1).softmax(-1), weights[row, :, :n], atol=1e-5, rtol=1e-4)
            assert torch.all(weights[row, :, n:] == 0)
