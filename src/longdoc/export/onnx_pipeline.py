"""Exported models behind the same pipelines as PyTorch ones.

    from longdoc.export import OnnxPipeline, load_onnx_pipeline
    classifier = load_onnx_pipeline("my-classifier-onnx")     # a DocumentClassifier on onnxruntime
    classifier.predict(["a long document ..."], explain=True)
    qa = OnnxPipeline.from_pretrained("my-qa-onnx")            # a QuestionAnswerer on onnxruntime
    qa(question="...", context=page)

The pipeline is the PyTorch pipeline class of the model's head kind (DocumentClassifier,
SentenceClassifier, QuestionAnswerer) with an `onnx_model.OnnxModel` in place of the torch model,
so pre- and post-processing are the same code; it is also an `OnnxPipeline` (`runtime` "onnx").
Segment-family explanations work too: they re-encode occluded segments with the encoder graph and
run the head graph on the vectors.
"""

from __future__ import annotations

import os

from ..errors import DataError
from ..families import get_family
from ..pipelines import PIPELINES
from .manifest import PRECISIONS, read_manifest


class OnnxPipeline:
    """A pipeline running an exported model on onnxruntime (the base of the ONNX pipeline classes).
    `OnnxPipeline.from_pretrained(folder)` gives the pipeline of the folder's head kind."""

    runtime = "onnx"
    onnx_dir: str = ""
    manifest: dict = {}

    @classmethod
    def from_pretrained(cls, onnx_dir: str | os.PathLike, device: str | None = None, precision: str | None = None,
                        threads: int | None = None, **options):
        pipeline = load_onnx_pipeline(onnx_dir, device=device, precision=precision, threads=threads, **options)
        if not isinstance(pipeline, cls):
            raise DataError(f"{onnx_dir} holds an exported {pipeline.manifest['head']} model, which "
                            f"{type(pipeline).__name__} reads, not {cls.__name__}")
        return pipeline


# head kind -> the ONNX pipeline class: the PyTorch pipeline class with OnnxPipeline in front
ONNX_PIPELINES = {head: type(f"Onnx{pipeline.__name__}", (OnnxPipeline, pipeline),
                             {"__doc__": f"{pipeline.__name__} on an exported model (onnxruntime).",
                              "__module__": __name__})
                  for head, pipeline in PIPELINES.items() if head != "seq2seq"}


def load_onnx_pipeline(onnx_dir: str | os.PathLike, device: str | None = None, precision: str | None = None,
                       threads: int | None = None, **options):
    """The pipeline of an export folder (`longdoc export` wrote it): the same public methods and outputs
    as the PyTorch pipeline of its head kind, with `.tokenizer`, `.model.config` and `.family`.

    precision: "fp32" or "int8" (default: what the export was made for, int8 when quantized);
    threads: onnxruntime's intra-op threads (default: its own, one per core); `options` go to the
    pipeline's constructor (truncate=... for classifiers, max_length=... for QA), None ones dropped."""
    from transformers import AutoTokenizer

    from .plans import PLANS, model_config

    if device is not None and str(device) != "cpu":
        raise ValueError(f"exported models run on onnxruntime's CPU provider, not on {device}: leave the device unset")
    manifest = read_manifest(onnx_dir)
    precision = precision or manifest.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    name, head = manifest["family"], manifest["head"]
    if name not in PLANS or head not in ONNX_PIPELINES:
        raise DataError(f"{onnx_dir}: an export of a {name} {head} model, which this longdoc cannot run; export it "
                        f"again with this version")
    plan = PLANS[name]
    model = plan.stand_in.load(onnx_dir, manifest, model_config(onnx_dir, name, head), precision, threads)
    tokenizer = AutoTokenizer.from_pretrained(onnx_dir)
    options = {key: value for key, value in options.items() if value is not None}
    pipeline = ONNX_PIPELINES[head](model, tokenizer, family=get_family(name), **options)
    pipeline.onnx_dir, pipeline.manifest = str(onnx_dir), manifest
    return pipeline
