"""ONNX export of HAT models: document classifiers here; sentence classifiers and QA in the slow set."""

import random

import numpy as np
import onnxruntime
import pytest
import torch

import export_models
from longdoc.export import export_onnx, load_onnx_pipeline
from longdoc.families import get_family
from longdoc.pipelines import load_pipeline
from qa_tiny_checkpoints import paragraph

TEXTS = [paragraph(random.Random(n), n) for n in (1, 2, 4)]  # 1 to 6 segments of 16 tokens


@pytest.fixture(autouse=True)
def fp32_pytorch(monkeypatch):
    monkeypatch.setenv("LONGDOC_BF16", "0")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("hat-export")
    folder = export_models.hat(root, "classification")
    export_onnx(folder, root / "onnx")
    return folder, root / "onnx"


def test_classifier_predicts_as_pytorch(classifier):
    folder, onnx_dir = classifier
    ours = load_onnx_pipeline(onnx_dir).predict(TEXTS)
    theirs = load_pipeline(folder).predict(TEXTS)
    for a, b in zip(ours, theirs):
        assert a.labels == b.labels and max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 1e-5
    with pytest.raises(ValueError, match="explanations are not available for HAT"):
        load_onnx_pipeline(onnx_dir).predict(TEXTS, explain=True)


@pytest.mark.parametrize("segments", [1, 4, 6])
def test_graph_alone_matches_pytorch_with_and_without_padding(classifier, segments):
    """A batch without any padding (PyTorch then runs without masks) and one with empty segments."""
    folder, onnx_dir = classifier
    model = get_family("hat").load(str(folder)).eval()
    session = onnxruntime.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = torch.randint(1000, 2000, (2, segments * 16), generator=torch.Generator().manual_seed(segments))
    ids[:, ::16] = 101
    for mask in (torch.ones_like(ids), (torch.arange(segments * 16) < 16 * segments - 9).long().expand(2, -1)):
        padded = torch.where(mask.bool(), ids, 0)
        with torch.no_grad():
            expected = model(input_ids=padded, attention_mask=mask).logits
        got = session.run(None, {"input_ids": padded.numpy(), "attention_mask": mask.numpy().copy(),
                                 "token_type_ids": np.zeros_like(padded.numpy())})[0]
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=0)


def test_the_stand_in_checks_segments_as_the_model_does(classifier):
    model = load_onnx_pipeline(classifier[1]).model
    with pytest.raises(ValueError, match="not a whole number of segments of max_sentence_size=16"):
        model(input_ids=torch.full((1, 20), 1000))
    with pytest.raises(ValueError, match="more than this model's max_sentences=6"):
        model(input_ids=torch.full((1, 7 * 16), 1000))


@pytest.mark.slow
def test_sentence_classifier_and_question_answerer_export(tmp_path):
    tagger = export_models.hat(tmp_path, "sentences")
    export_onnx(tagger, tmp_path / "tagger-onnx")
    documents = [["A first sentence here.", "Another about kernel modules.", "A third."], ["Only one."]]
    exported = load_onnx_pipeline(tmp_path / "tagger-onnx")
    assert type(exported).__name__ == "OnnxSentenceClassifier"
    ours, theirs = exported.predict(documents), load_pipeline(tagger).predict(documents)
    for a, b in zip(ours, theirs):
        assert a.labels == b.labels
    qa = export_models.hat(tmp_path, "spans")
    export_onnx(qa, tmp_path / "qa-onnx")
    contexts = [paragraph(random.Random(n), n) for n in (2, 6)]
    questions = ["Which kernel module?", "Why the socket?"]
    ours = load_onnx_pipeline(tmp_path / "qa-onnx").answer(questions, contexts, top_k=2)
    theirs = load_pipeline(qa).answer(questions, contexts, top_k=2)
    assert [[a["answer"] for a in r] for r in ours] == [[a["answer"] for a in r] for r in theirs]
