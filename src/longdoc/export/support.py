"""Which families and head kinds export to ONNX, and why the others are refused. Imports no torch, so
that the command line can say it before loading anything."""

from __future__ import annotations

# family -> the head kinds whose exported graphs are checked exact (fp32 within the tolerance) at every length
EXPORTS = {
    "longformer": ("classification", "spans"),
    "hat": ("classification", "sentences", "spans"),
    "segment": ("classification",),
    "chunk-pool": ("classification",),
    "truncate": ("classification",),
}

# family -> why it is refused (every head kind)
REFUSED_FAMILIES = {
    "lsg": "LSG attention takes one of two paths by the input's length (dense up to two blocks, blocked "
           "local + sparse + global beyond, with the input padded to whole blocks first), so one traced graph "
           "would hold one path only, and its sparse keys (norm top-k, pooling, strides, random LSH buckets) "
           "would each need an export formulation checked against the kernel; none is written yet, so no graph "
           "that could be wrong at other lengths is exported. Serve LSG models with --runtime torch",
}

# head kind -> why it is refused (every family)
REFUSED_HEADS = {
    "seq2seq": "an encoder-decoder generates text in a loop (beam search over a growing decoder input), which one "
               "ONNX graph does not hold; summarizers run with PyTorch",
    "tokens": "no longdoc pipeline reads token-classification models, so an export could not be served",
    "choices": "no longdoc pipeline reads multiple-choice models, so an export could not be served",
    "masked-lm": "no longdoc pipeline reads masked-LM models, so an export could not be served",
}


class ExportRefused(ValueError):
    """This model cannot be exported (exactly); the message names the family, the head kind and why."""


def check_exportable(family: str | None, head: str | None, model_dir: str = "the model") -> None:
    """Nothing when (family, head) exports; an ExportRefused saying why otherwise."""
    if family is None:
        raise ExportRefused(f"{model_dir} is not a model of a longdoc family: export the folders `longdoc train` or "
                            f"`longdoc convert` wrote")
    if head is None:
        raise ExportRefused(f"{model_dir}: a {family} encoder without a task head; train one first "
                            f"(`longdoc train --family {family} --model {model_dir}`), then export it")
    if head in REFUSED_HEADS:
        raise ExportRefused(f"cannot export the {family} {head} model {model_dir}: {REFUSED_HEADS[head]}")
    if family in REFUSED_FAMILIES:
        raise ExportRefused(f"cannot export the {family} {head} model {model_dir}: {REFUSED_FAMILIES[family]}")
    if head not in EXPORTS.get(family, ()):
        able = ", ".join(f"{name} ({'/'.join(heads)})" for name, heads in EXPORTS.items())
        raise ExportRefused(f"cannot export the {family} {head} model {model_dir}: ONNX export covers {able}")
