"""`longdoc_export.json`: what an export folder holds, written last by `longdoc export` and read by
`load_onnx_pipeline`.

    {"format": "onnx", "family": "longformer", "head": "spans", "opset": 18,
     "graphs": {"model": {"fp32": "model.onnx", "int8": "model.int8.onnx",
                          "inputs": {"input_ids": ["batch", "tokens"], ...}, "outputs": {...}}},
     "precision": "int8",            # the graphs a pipeline runs unless told otherwise
     "quantization": "int8" | null, "optimized": false,
     "checked": [{"case": "3 x 37 tokens, padding, 0-5 globals", "graph": "model", "max_abs_diff": 3e-07}, ...],
     "tolerance": 0.0001, "int8": {"max_abs_diff": ..., "agreement": ...} | null,
     "versions": {"longdoc": ..., "torch": ..., "onnx": ..., "onnxruntime": ...}}

This module imports no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError

MANIFEST = "longdoc_export.json"
FORMAT = "onnx"
PRECISIONS = ("fp32", "int8")


def write_manifest(folder, fields: dict) -> Path:
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(folder) -> dict:
    """The manifest of an export folder; a DataError saying what the folder is otherwise."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        hint = (" (it holds a PyTorch model: export it with `longdoc export MODEL_DIR OUT_DIR --format onnx`, or serve "
                "it with --runtime torch)") if (Path(folder) / "config.json").is_file() else ""
        raise DataError(f"{folder}: not a folder `longdoc export` wrote (no {MANIFEST}){hint}")
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error}); export the model again") from None
    if not isinstance(fields, dict) or fields.get("format") != FORMAT or "graphs" not in fields:
        raise DataError(f"{path}: not an ONNX export manifest (format {FORMAT!r} with graphs); export the model again")
    return fields


def graph_file(folder, manifest: dict, graph: str, precision: str) -> Path:
    """The file of one graph at one precision; a DataError when the export has no such file."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    entry = manifest["graphs"].get(graph) or {}
    name = entry.get(precision)
    if name is None:
        made = [p for p in PRECISIONS if entry.get(p)]
        hint = " (export with --quantize int8 for int8 graphs)" if precision == "int8" else ""
        raise DataError(f"{folder}: the export has no {precision} {graph!r} graph (it has {', '.join(made) or 'none'})"
                        f"{hint}")
    path = Path(folder) / name
    if not path.is_file():
        raise DataError(f"{path}: missing from the export folder; export the model again")
    return path
