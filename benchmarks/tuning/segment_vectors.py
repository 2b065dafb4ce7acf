"""Frozen-encoder segment vectors of a set's train and dev splits, through the path `longdoc train
--freeze-encoder` takes (the family's segmentation and SegmentVectorCache, so a later `longdoc train
--cache-dir` with the same --max-segments reuses them), saved as one file per set for the search.

    .venv/bin/python benchmarks/tuning/segment_vectors.py --set postgres-docs --cache-dir DIR --out FILE.pt
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_kernel_docs import minilm_path  # noqa: E402
from sets import load_set  # noqa: E402

from longdoc.data.documents import read_documents  # noqa: E402
from longdoc.data.labels import LabelSpace  # noqa: E402
from longdoc.families import get_family  # noqa: E402

MAX_SEGMENTS = 32  # 32 x 254 tokens per document: the token budget of the search on 2 shared cores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", required=True)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--max-segments", type=int, default=MAX_SEGMENTS)
    parser.add_argument("--splits", nargs="+", default=["train", "dev"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    paths, provenance = load_set(args.set)
    family = get_family("segment")
    documents = {s: read_documents(paths[s], "text", "label") for s in args.splits}
    space = LabelSpace.from_documents(documents["train"], False)
    options = dict(freeze_encoder=True, max_segments=args.max_segments, cache_dir=args.cache_dir)
    model, tokenizer = family.build("classification", str(minilm_path()), {**options, "head_config": space.config_fields()})
    saved = {"provenance": provenance, "labels": list(space.names), "max_segments": args.max_segments}
    for split in args.splits:
        targets = [space.encode(d, split) for d in documents[split]]
        items = family.training_items(model, tokenizer, [d.text for d in documents[split]], targets,
                                      {**options, "progress": f"{args.set} {split}"})
        saved[split] = {"vectors": [item["segment_embeddings"] for item in items],
                        "labels": [item["labels"] for item in items]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(saved, args.out)


if __name__ == "__main__":
    main()
