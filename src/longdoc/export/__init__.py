"""ONNX export of longdoc models, and pipelines that run the exported graphs with onnxruntime.

    longdoc export MODEL_DIR OUT_DIR --format onnx [--opset N] [--optimize] [--quantize int8]

    from longdoc.export import export_onnx, load_onnx_pipeline, OnnxPipeline
    print(export_onnx("my-model", "my-model-onnx"))
    pipeline = load_onnx_pipeline("my-model-onnx")     # same methods and outputs as the PyTorch pipeline

What exports and what is refused (and why): `support.py`; how each family's graphs are traced and
checked: `plans.py`; the Longformer's export formulation: `longdoc.attention.banded`. See
docs/export.md. The names below are imported on first use (the command line builds without torch).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "export_onnx": "onnx_export", "ExportReport": "onnx_export",
    "load_onnx_pipeline": "onnx_pipeline", "OnnxPipeline": "onnx_pipeline",
    "OnnxModel": "onnx_model",
    "ExportRefused": "support", "EXPORTS": "support", "check_exportable": "support",
    "read_manifest": "manifest",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
