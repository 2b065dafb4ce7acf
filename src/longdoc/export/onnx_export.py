"""`export_onnx(model_dir, out_dir)`: a trained longdoc model as ONNX graphs with dynamic batch and
length axes, checked against the PyTorch model before anything is reported.

    from longdoc.export import export_onnx
    report = export_onnx("my-qa-model", "my-qa-onnx", quantize="int8")
    print(report)   # the files, the checks (lengths, largest difference), int8's difference

Steps: refuse what cannot be exported exactly (`support.py`, before the model loads); trace each of
the family's graphs (`plans.py`) with torch.export (dynamic axes, never at a checked length) into
ONNX; quantize and optimize with onnxruntime if asked; run every check case on the PyTorch model and
on onnxruntime (fp32 within the tolerance, else a VerificationError); then move the folder in place:
the graphs, the tokenizer, the source's config.json and longdoc_export.json. A failed export leaves no
folder behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .manifest import FORMAT, MANIFEST, write_manifest
from .quantize import QUANTIZATIONS, optimize_in_place, quantize_int8
from .support import check_exportable
from .verification import DEFAULT_TOLERANCE, check_exact, run_cases, summary

logger = logging.getLogger(__name__)

FORMATS = (FORMAT,)


@dataclass
class ExportReport:
    folder: str
    family: str
    head: str
    opset: int
    files: dict[str, int]  # file name -> bytes
    fp32: dict  # summary of the fp32 checks
    int8: dict | None = None
    checked: list = field(default_factory=list)
    optimized: bool = False

    def __str__(self) -> str:
        files = ", ".join(f"{name} ({size / 2**20:.1f} MiB)" for name, size in self.files.items())
        lengths = " and ".join(f"{', '.join(map(str, sorted(found)))} {unit}" for unit, found in self.lengths().items())
        lines = [f"exported the {self.family} {self.head} model to {self.folder} (ONNX opset {self.opset}"
                 f"{', optimized' if self.optimized else ''}): {files}",
                 f"fp32 checked against PyTorch on {self.fp32['cases']} cases at {lengths} "
                 f"(padding, batches of 1-3): largest difference {self.fp32['max_abs_diff']:.2g} "
                 f"(tolerance {DEFAULT_TOLERANCE:g})"]
        if self.int8 is not None:
            lines.append(f"int8: largest difference {self.int8['max_abs_diff']:.2g} on the same random-token cases; "
                         f"int8 changes numbers by design: judge it by accuracy on your data "
                         f"(benchmarks/bench_export.py measures kernel-docs)")
        return "\n".join(lines)

    def lengths(self) -> dict[str, set[int]]:
        """unit ("tokens", "segments") -> the lengths the checks covered."""
        found: dict[str, set[int]] = {}
        for result in self.checked:
            found.setdefault(result["unit"], set()).update(result["lengths"])
        return found


def export_onnx(model_dir, out_dir, format: str = FORMAT, opset: int | None = None, optimize: bool = False,
                quantize: str | None = None, tolerance: float = DEFAULT_TOLERANCE) -> ExportReport:
    """Export the model saved in `model_dir` into the new folder `out_dir` (see the module docstring)."""
    import torch

    from ..families import family_of_config, get_family, head_of_config, read_model_config

    if format not in FORMATS:
        raise ValueError(f"--format {format}: longdoc exports {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize {quantize}: use one of {', '.join(QUANTIZATIONS)}")
    if opset is not None and opset < 18:
        raise ValueError(f"--opset {opset}: the exporter writes opset 18 and later (the default is the exporter's own)")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    fields = read_model_config(model_dir)
    name, head = family_of_config(fields), head_of_config(fields)
    check_exportable(name, head, str(model_dir))
    _check_output(model_dir, out_dir)
    from transformers import AutoTokenizer

    from .plans import PLANS

    family = get_family(name)
    model = family.load(str(model_dir), (head,), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    plan = PLANS[name]
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        graphs, opsets = {}, set()
        for graph in plan.graphs(model, tokenizer, head):
            path = staging / f"{graph.name}.onnx"
            logger.info(f"tracing the {name} {graph.name} graph ({', '.join(graph.inputs)} -> "
                        f"{', '.join(graph.outputs)}) ...")
            opsets.add(_trace(graph, path, opset))
            entry = {"fp32": path.name, "inputs": {n: list(graph.axes[n]) for n in graph.inputs},
                     "outputs": list(graph.outputs)}
            if quantize:
                entry["int8"] = quantize_int8(path, staging / f"{graph.name}.int8.onnx").name if graph.quantize \
                    else path.name
            if optimize:
                for file_name in dict.fromkeys(entry[p] for p in ("fp32", "int8") if p in entry):
                    optimize_in_place(staging / file_name)
            graphs[graph.name] = entry
        manifest = {"format": FORMAT, "family": name, "head": head, "opset": max(opsets), "graphs": graphs,
                    "precision": quantize or "fp32", "quantization": quantize, "optimized": optimize}
        logger.info("checking the exported graphs against the PyTorch model ...")
        config = model.config
        cases = plan.cases(model, tokenizer, head)
        checked = run_cases(model, plan.stand_in.load(staging, manifest, config, "fp32"), cases)
        check_exact(checked, name, ", ".join(graphs), tolerance)
        int8 = None
        if quantize:
            int8 = summary(run_cases(model, plan.stand_in.load(staging, manifest, config, "int8"), cases))
        tokenizer.save_pretrained(staging)
        shutil.copyfile(model_dir / "config.json", staging / "config.json")
        manifest.update(checked=checked, tolerance=tolerance, int8=int8, versions=_versions())
        write_manifest(staging, manifest)
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = {p.name: p.stat().st_size for p in sorted(out_dir.glob("*.onnx*"))}
    return ExportReport(str(out_dir), name, head, manifest["opset"], files, summary(checked), int8, checked, optimize)


def _trace(graph, path: Path, opset: int | None) -> int:
    """Trace one graph into `path` with every named axis dynamic; its opset.

    torch.export traces it first, on its own: the ONNX exporter's fallbacks (draft export and others)
    would write a graph whose shape assumptions were dropped, so a graph torch.export cannot trace with
    these dynamic axes is refused instead."""
    import onnx
    import torch

    from .support import ExportRefused

    # "torchvision is not installed" lines from the exporter's registry, once per process: not the user's concern
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    dynamic = tuple({axis: torch.export.Dim.DYNAMIC for axis, axis_name in enumerate(graph.axes[n]) if axis_name}
                    for n in graph.inputs)
    captured = io.StringIO()
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(captured), \
            contextlib.redirect_stderr(captured):
        warnings.simplefilter("ignore")
        try:
            with graph.tracing():
                program = torch.export.export(graph.module.eval(), graph.example, dynamic_shapes=dynamic,
                                              strict=False)
        except Exception as error:
            raise ExportRefused(f"the {graph.name} graph cannot be traced with dynamic batch and length axes "
                                f"({type(error).__name__}: {str(error)[:600]}), so the model is not exported"
                                ) from error
        onnx_program = torch.onnx.export(program, graph.example, dynamo=True, input_names=list(graph.inputs),
                                         output_names=list(graph.outputs), opset_version=opset, verbose=False)
        onnx_program.save(str(path))
    proto = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _check_output(model_dir: Path, out_dir: Path) -> None:
    if out_dir.resolve() == model_dir.resolve():
        raise ValueError(f"{out_dir} is the model folder itself: give a new folder for the export")
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file: give a new folder for the export")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise DataError(f"{out_dir} exists and is not an earlier export (no {MANIFEST}): give a new or empty folder, "
                        f"so that nothing else in it is overwritten")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Replace `out_dir` (absent, empty, or an earlier export) by the checked export."""
    if out_dir.is_dir():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def _versions() -> dict:
    from importlib.metadata import version

    import onnx
    import onnxruntime
    import torch

    return {"longdoc": version("longdoc"), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}
