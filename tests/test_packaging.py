"""What a packager reads: the declared dependencies and extras, and the message when an optional
dependency is missing."""

import sys
from pathlib import Path

import pytest

from longdoc.metrics.summarization import rouge_scores

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]


def test_license_is_an_spdx_string_and_extras_hold_only_used_packages():
    assert PYPROJECT["license"] == "Apache-2.0"
    extras = PYPROJECT["optional-dependencies"]
    # the deployment extras hold what their own package imports (onnxscript: torch.onnx.export's dynamo exporter)
    imports = {"serve": ("serve", {"fastapi", "uvicorn", "prometheus_client"}),
               "export": ("export", {"onnx", "onnxruntime"}),
               "ray": ("serve", {"ray"})}
    source = Path(__file__).parents[1] / "src" / "longdoc"
    for extra, (package, modules) in imports.items():
        assert extra in extras
        text = "\n".join(p.read_text() for p in (source / package).rglob("*.py"))
        for module in modules:
            assert f"import {module}" in text or f"from {module}" in text, (extra, module)
    assert extras["summarization"] == ["rouge-score"]
    assert not any(d.startswith("rouge-score") for d in PYPROJECT["dependencies"])


def test_rouge_without_rouge_score_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "rouge_score", None)  # import rouge_score now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "longdoc\[summarization\]"'):
        rouge_scores(["a summary"], ["a reference"])


def test_training_a_summarizer_without_rouge_score_fails_before_reading_anything(monkeypatch, tmp_path):
    from longdoc import train_summarizer

    monkeypatch.setitem(sys.modules, "rouge_score", None)
    with pytest.raises(ImportError, match=r"longdoc\[summarization\]"):
        train_summarizer(tmp_path / "missing.jsonl", tmp_path / "missing.jsonl", tmp_path / "out", model="none")
