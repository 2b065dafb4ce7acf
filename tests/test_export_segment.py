"""ONNX export of the segment families (segment with its probe, truncate; chunk-pool in the slow set):
two graphs (encoder, head), a DocumentClassifier on them that predicts, explains and evaluates as the
PyTorch one does."""

import json
import random
import warnings

import pytest
import torch

import export_models
from longdoc.export import export_onnx, load_onnx_pipeline
from longdoc.pipelines import load_pipeline
from qa_tiny_checkpoints import paragraph

TEXTS = [paragraph(random.Random(n), n) for n in (1, 3, 6)]  # 1 to 6 segments of 12 tokens


@pytest.fixture(autouse=True)
def fp32_pytorch(monkeypatch):
    monkeypatch.setenv("LONGDOC_BF16", "0")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """method -> (the saved model, its export)."""
    root = tmp_path_factory.mktemp("segment-export")
    folders = {"segment": export_models.segment(root, "segment", probe_weight=0.5),
               "truncate": export_models.segment(root, "truncate")}
    return {method: (folder, _export(folder, root / f"{method}-onnx")) for method, folder in folders.items()}


def _export(folder, out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(folder, out)
    return out


def assert_same_predictions(ours, theirs, tolerance=1e-5):
    for a, b in zip(ours, theirs):
        assert a.labels == b.labels
        assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < tolerance
        assert a.explanation.keys() == b.explanation.keys()
        for label, mine in a.explanation.items():
            reference = b.explanation[label]
            assert [s.segment for s in mine.segments] == [s.segment for s in reference.segments]
            for x, y in zip(mine.segments, reference.segments):
                assert abs(x.weight - y.weight) < tolerance and (x.start, x.end) == (y.start, y.end)
                assert [(s.start, s.end) for s in x.sentences] == [(s.start, s.end) for s in y.sentences]
                assert all(abs(s.score - t.score) < 1e-4 for s, t in zip(x.sentences, y.sentences))


@pytest.mark.parametrize("method", ["segment", "truncate"])
def test_predictions_and_explanations_are_the_pytorch_ones(exported, method):
    folder, onnx_dir = exported[method]
    manifest = json.loads((onnx_dir / "longdoc_export.json").read_text())
    assert set(manifest["graphs"]) == {"segment_encoder", "segment_head"}
    segments_axis = manifest["graphs"]["segment_head"]["inputs"]["segment_mask"]
    assert segments_axis == (["batch", "segments"] if method == "segment" else ["batch", None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # documents longer than 6 segments are cut, with a warning, by both
        ours = load_onnx_pipeline(onnx_dir).predict(TEXTS, explain=True, top_segments=2)
        theirs = load_pipeline(folder).predict(TEXTS, explain=True, top_segments=2)
    assert all(p.explanation for p in ours)
    assert_same_predictions(ours, theirs)


def test_evaluate_reads_a_labelled_file_as_pytorch_does(exported, tmp_path):
    folder, onnx_dir = exported["segment"]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n"
                            for t, label in zip(TEXTS, ("alpha", "beta", "gamma"))))
    warnings.simplefilter("ignore")
    ours, theirs = load_onnx_pipeline(onnx_dir).evaluate(path), load_pipeline(folder).evaluate(path)
    for key in ("accuracy", "macro_f1"):
        assert ours[key] == theirs[key]


def test_the_stand_in_takes_both_input_forms_and_checks_them(exported):
    folder, onnx_dir = exported["segment"]
    model = load_onnx_pipeline(onnx_dir).model
    reference = load_pipeline(folder).model
    ids = torch.randint(1000, 2000, (3, 14))
    mask = torch.tensor([[True, True], [True, False]])
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=torch.ones_like(ids), segment_mask=mask).logits
    got = model(input_ids=ids, attention_mask=torch.ones_like(ids), segment_mask=mask).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="segment_mask marks 3 real segments but input_ids holds 2"):
        model(input_ids=ids[:2], segment_mask=mask)
    with pytest.raises(ValueError, match="documents have 7 segments but the model has positions for 6"):
        model(segment_embeddings=torch.zeros(1, 7, 32))
    with pytest.raises(ValueError, match="at least one segment, in its first slot"):
        model(segment_embeddings=torch.zeros(1, 2, 32), segment_mask=torch.tensor([[False, True]]))


@pytest.mark.slow
def test_chunk_pool_exports(tmp_path):
    folder = export_models.segment(tmp_path, "chunk-pool", chunk_pooling="max")
    onnx_dir = _export(folder, tmp_path / "onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = load_onnx_pipeline(onnx_dir).predict(TEXTS, explain=True)
        theirs = load_pipeline(folder).predict(TEXTS, explain=True)
    assert_same_predictions(ours, theirs)
