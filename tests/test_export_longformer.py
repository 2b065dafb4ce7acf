"""ONNX export of Longformer classifiers and QA models: the graph is right at lengths other than the
traced one (onnxruntime alone, against the PyTorch model), the pipelines give the PyTorch pipelines'
results, int8 and optimized graphs load, and a graph that is wrong at other lengths is never written."""

import contextlib
import io
import json
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import export_models
from longdoc.cli import main
from longdoc.errors import VerificationError
from longdoc.export import ExportRefused, OnnxPipeline, export_onnx, load_onnx_pipeline
from longdoc.families import get_family
from longdoc.pipelines import load_pipeline
from qa_tiny_checkpoints import paragraph

CONTEXTS = [paragraph(__import__("random").Random(n), n) for n in (1, 4, 9)]
QUESTIONS = ["Which kernel module was compiled?", "Why the socket?", "What does the parser index?"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("longformer-export")
    return {head: export_models.longformer(root, head) for head in ("spans", "classification")}


@pytest.fixture(scope="module")
def qa_export(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "qa"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", str(models["spans"]), str(out), "--format", "onnx", "--quantize", "int8"]) == 0
    assert "largest difference" in printed.getvalue() and "int8: " in printed.getvalue()
    return out


@pytest.fixture(scope="module")
def classifier_export(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "classifier"
    export_onnx(models["classification"], out, optimize=True)
    return out


@pytest.fixture(autouse=True)
def fp32_pytorch(monkeypatch):
    monkeypatch.setenv("LONGDOC_BF16", "0")  # the PyTorch pipelines in fp32, as the exported graphs


def test_the_export_folder(qa_export):
    manifest = json.loads((qa_export / "longdoc_export.json").read_text())
    assert (manifest["family"], manifest["head"], manifest["quantization"], manifest["precision"]) == \
        ("longformer", "spans", "int8", "int8")
    graph = manifest["graphs"]["model"]
    assert graph["inputs"]["input_ids"] == ["batch", "tokens"] and graph["outputs"] == ["start_logits", "end_logits"]
    lengths = {n for case in manifest["checked"] for n in case["lengths"]}
    assert {2, 3, 9, 21, 160} <= lengths  # < a block, just over the window (2w + 1 = 9), past 4w, the longest
    assert all(case["max_abs_diff"] <= 1e-4 for case in manifest["checked"])
    for name in ("model.onnx", "model.int8.onnx", "config.json", "tokenizer.json"):
        assert (qa_export / name).is_file()
    proto = onnx.load(str(qa_export / "model.onnx"))
    assert manifest["opset"] >= 18 and not [n for n in proto.graph.node if n.op_type == "AsStrided"]
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert all(isinstance(size, str) for dims in inputs.values() for size in dims)  # every axis dynamic


@pytest.mark.parametrize("width", [6, 9, 23, 64, 160])
def test_graph_alone_matches_pytorch_at_other_lengths(models, qa_export, width):
    """onnxruntime on the file, no longdoc code: 3 rows (one full, two padded), 1 / 6 / 0 global tokens."""
    model = get_family("longformer").load(str(models["spans"]), ("spans",)).eval()
    generator = torch.Generator().manual_seed(width)
    ids = torch.randint(1000, 2000, (3, width), generator=generator)
    mask = torch.ones_like(ids)
    for row, keep in ((1, (2 * width) // 3), (2, max(2, width // 4))):
        ids[row, keep:], mask[row, keep:] = model.config.pad_token_id, 0
    glob = torch.zeros_like(ids)
    glob[0, 0] = 1
    glob[1, :5] = 1
    glob[1, width // 2] = 1
    types = torch.zeros_like(ids)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, global_attention_mask=glob, token_type_ids=types)
    session = onnxruntime.InferenceSession(str(qa_export / "model.onnx"), providers=["CPUExecutionProvider"])
    start, end = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                                    "global_attention_mask": glob.numpy(), "token_type_ids": types.numpy()})
    np.testing.assert_allclose(start, expected.start_logits.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(end, expected.end_logits.numpy(), atol=1e-4, rtol=0)


def test_question_answerer_gives_the_pytorch_answers(models, qa_export):
    pytorch = load_pipeline(models["spans"])
    exported = load_onnx_pipeline(qa_export, precision="fp32")
    assert isinstance(exported, OnnxPipeline) and type(exported).__name__ == "OnnxQuestionAnswerer"
    assert exported.family.name == "longformer" and exported.model.config.model_type == "longformer"
    ours = exported.answer(QUESTIONS, CONTEXTS, top_k=3, max_length=40, doc_stride=10)  # several windows a context
    theirs = pytorch.answer(QUESTIONS, CONTEXTS, top_k=3, max_length=40, doc_stride=10)
    assert [[a["answer"] for a in r] for r in ours] == [[a["answer"] for a in r] for r in theirs]
    for mine, reference in zip(ours, theirs):
        for a, b in zip(mine, reference):
            assert (a["start"], a["end"]) == (b["start"], b["end"]) and abs(a["score"] - b["score"]) < 1e-5
    assert exported(question=QUESTIONS[0], context=CONTEXTS[2])["answer"] == pytorch(question=QUESTIONS[0],
                                                                                       context=CONTEXTS[2])["answer"]


def test_int8_is_the_default_of_a_quantized_export(qa_export):
    pipeline = OnnxPipeline.from_pretrained(qa_export)
    assert pipeline.model.precision == "int8"
    proto = onnx.load(str(qa_export / "model.int8.onnx"))
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in proto.graph.node)
    answers = pipeline.answer(QUESTIONS, CONTEXTS)
    assert all(context[a[0]["start"] : a[0]["end"]] == a[0]["answer"] for a, context in zip(answers, CONTEXTS))


def test_optimized_classifier_gives_the_pytorch_scores(models, classifier_export):
    manifest = json.loads((classifier_export / "longdoc_export.json").read_text())
    assert manifest["optimized"] and manifest["precision"] == "fp32" and manifest["quantization"] is None
    texts = [paragraph(__import__("random").Random(n), n) for n in (2, 7, 30)]  # 30 sentences: cut at 160 tokens
    ours = OnnxPipeline.from_pretrained(classifier_export).predict(texts)
    theirs = load_pipeline(models["classification"]).predict(texts)
    for a, b in zip(ours, theirs):
        assert a.labels == b.labels
        assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 1e-5


def test_the_stand_in_checks_inputs_as_the_model_does(classifier_export):
    model = load_onnx_pipeline(classifier_export).model
    with pytest.raises(ValueError, match=r"longer than this model's 160 tokens.*--max-length 200"):
        model(input_ids=torch.full((1, 200), 1000))
    with pytest.raises(ValueError, match="token id 40000 is outside"):
        model(input_ids=torch.tensor([[101, 40000, 102]]))
    with pytest.raises(ValueError, match="CPU provider"):
        model.to("cuda")
    with pytest.raises(ValueError, match="cannot be trained"):
        model.train()
    assert model(input_ids=torch.tensor([[101, 1000, 102]])).logits.shape == (1, 3)


def test_a_formulation_frozen_at_the_traced_length_is_refused(models, tmp_path, monkeypatch):
    """A Python int of the traced length in the formulation (as Longformer exports elsewhere have, from
    `as_strided` strides and shapes read as ints) is refused at export time, not written."""
    from longdoc.export import longformer_graph

    def frozen(q, k, v, *rest):
        out = original(q, k, v, *rest)
        return out[:, :, torch.from_numpy(np.arange(int(q.shape[2])))]  # positions of the traced length

    original = longformer_graph.band_local_attention
    monkeypatch.setattr(longformer_graph, "band_local_attention", frozen)
    with pytest.raises(ExportRefused, match="(?s)model graph cannot be traced with dynamic .* specialized it to be "
                                            "a constant"):
        export_onnx(models["classification"], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial*"))


def test_a_graph_wrong_at_other_lengths_is_never_written(models, classifier_export, tmp_path, monkeypatch):
    """Were a graph right at the traced length only, the checks at the other lengths fail the export
    and no folder is left (here onnxruntime's outputs are spoiled past 20 tokens; the graph traced for
    the classifier's export is reused, not traced again)."""
    from longdoc.export import onnx_export
    from longdoc.export.plans import LongformerPlan

    monkeypatch.setattr(onnx_export, "_trace", lambda graph, path, opset: shutil.copyfile(
        classifier_export / "model.onnx", path) and 20)

    class SpoiledPastTwenty(LongformerPlan.stand_in):
        def __call__(self, input_ids=None, **kwargs):
            out = super().__call__(input_ids=input_ids, **kwargs)
            if input_ids.shape[1] > 20:
                out.logits += 1e-3
            return out

    monkeypatch.setattr(LongformerPlan, "stand_in", SpoiledPastTwenty)
    with pytest.raises(VerificationError, match=r"longformer graphs \(model\) differ .* on 2 of 7 checks"):
        export_onnx(models["classification"], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial*"))


def test_the_models_own_kernel_is_refused_not_exported(models, tmp_path, monkeypatch):
    """The PyTorch model's forward (its kernel reads the number of global tokens as an int) cannot be
    traced with dynamic axes: the export is refused, naming the graph."""
    from longdoc.export import longformer_graph

    def own_forward(self, input_ids, attention_mask, global_attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          global_attention_mask=global_attention_mask, token_type_ids=token_type_ids).logits

    monkeypatch.setattr(longformer_graph.LongformerGraph, "forward", own_forward)
    with pytest.raises(ExportRefused, match="model graph cannot be traced"):
        export_onnx(models["classification"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
