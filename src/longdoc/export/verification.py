"""Checking an exported model against the PyTorch model it came from, case by case (`plans.Case`).

fp32 graphs must give the PyTorch outputs within an absolute tolerance (1e-4) on every case, or the
export fails with a VerificationError naming the case; int8 graphs are compared by how often their
top-1 choice agrees (their differences are quantization's, not a wrong graph's) and by their largest
difference, which the report states.
"""

from __future__ import annotations

import math

import torch

from ..errors import VerificationError

DEFAULT_TOLERANCE = 1e-4
DECISIONS = ("logits", "start_logits")  # outputs whose argmax is a prediction (top-1 agreement is read on them)


def _call(model, case):
    if case.call == "__call__":
        return model(**case.kwargs)
    return getattr(model, case.call)(**case.kwargs)


def _field(output, name: str) -> torch.Tensor:
    value = output if name == "self" else getattr(output, name)
    if value is None:
        raise VerificationError(f"the exported model gave no {name!r} output")
    return value.detach().float().cpu()


def run_cases(reference, exported, cases) -> list[dict]:
    """Per case: its label, the lengths it covers, the largest absolute difference over its fields, and
    the share of rows whose top-1 (argmax over the last axis of logits or start logits) agrees (None
    for a case without either, such as segment vectors)."""
    results = []
    for case in cases:
        with torch.inference_mode():
            expected = _call(reference, case)
        try:
            got = _call(exported, case)
        except Exception as error:  # onnxruntime refusing a shape the graph froze at the traced length
            if type(error).__module__.startswith("onnxruntime"):
                raise VerificationError(f"the exported graph fails on case {case.label!r}: {str(error)[:500]}; the "
                                        f"export is not written") from error
            raise
        worst, agree = 0.0, None
        for name in case.fields:
            e, g = _field(expected, name), _field(got, name)
            if e.shape != g.shape:
                raise VerificationError(f"case {case.label!r}: {name} has shape {tuple(g.shape)} in the exported model "
                                        f"but {tuple(e.shape)} in PyTorch")
            diff = float((e - g).abs().max()) if e.numel() else 0.0
            worst = max(worst, diff if math.isfinite(diff) else math.inf)
            if name in DECISIONS and agree is None and e.numel():
                agree = float((e.argmax(-1) == g.argmax(-1)).float().mean())
        results.append({"case": case.label, "lengths": list(case.lengths), "unit": case.unit, "max_abs_diff": worst,
                        "top1_agreement": agree})
    return results


def check_exact(results: list[dict], family: str, graphs: str, tolerance: float = DEFAULT_TOLERANCE) -> None:
    """A VerificationError naming every case where the exported graphs differ by more than `tolerance`."""
    bad = [r for r in results if not r["max_abs_diff"] <= tolerance]
    if bad:
        lines = "; ".join(f"{r['case']}: {r['max_abs_diff']:.3g}" for r in bad)
        raise VerificationError(
            f"the exported {family} graphs ({graphs}) differ from the PyTorch model by more than {tolerance:g} on "
            f"{len(bad)} of {len(results)} checks ({lines}); the export is not written (no longdoc_export.json). "
            f"Please report this with the model's config.json")


def summary(results: list[dict]) -> dict:
    agreements = [r["top1_agreement"] for r in results if r["top1_agreement"] is not None]
    return {"max_abs_diff": max(r["max_abs_diff"] for r in results),
            "top1_agreement": min(agreements) if agreements else None, "cases": len(results)}
