"""Encoding many segments fast, and caching the vectors of a frozen encoder on disk.

Encoding the segments is where a segment classifier spends its time, so segments of all the
documents are pooled, sorted by length and encoded in batches of a fixed token budget (padding
only to the longest segment of each batch), never one document at a time. Where the CPU has
bf16 units (AVX512-BF16 or AMX) the encoder runs under bf16 autocast; `bf16_autocast_default()`
says whether it will.

A frozen encoder maps the same segment to the same vector every epoch, so its vectors are kept
in a cache folder keyed by the encoder's weights (a hash of its tensors), the pooling, the
precision and the segment token ids themselves (which covers the text, the tokenizer and the
segmentation). Batching and the bf16 decision are `longdoc.runtime`'s.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..runtime import DEFAULT_BATCH_TOKENS, autocast_context, bf16_autocast_default, length_sorted_batches


def default_cache_dir() -> Path:
    root = os.environ.get("LONGDOC_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "longdoc"
    return Path(root)


def pad_segments(segments: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, L) input_ids and attention_mask of token lists padded on the right."""
    longest = max(len(s) for s in segments)
    ids = torch.full((len(segments), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(segments), longest), dtype=torch.long)
    for row, segment in enumerate(segments):
        ids[row, : len(segment)] = torch.tensor(segment, dtype=torch.long)
        mask[row, : len(segment)] = 1
    return ids, mask


@torch.inference_mode()
def encode_documents(
    model,
    documents: list[list[list[int]]],
    pad_token_id: int,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    bf16: bool | None = None,
    progress: str | None = "encoding segments",
) -> list[torch.Tensor]:
    """Segment vectors of each document: documents[d] is its list of segments (token ids) ->
    one (N_d, C) fp32 tensor per document. `model` is a SegmentClassifier (its encode_segments)."""
    device = model.device
    bf16 = bf16_autocast_default(device) if bf16 is None else bf16
    flat = [segment for segments in documents for segment in segments]
    batches = length_sorted_batches([len(s) for s in flat], batch_tokens)
    vectors: list[torch.Tensor | None] = [None] * len(flat)
    was_training = model.training
    model.eval()
    bar = tqdm(total=sum(len(s) for s in flat), desc=progress, unit="tok", unit_scale=True, disable=progress is None)
    with autocast_context(device, bf16):
        for batch in batches:
            ids, mask = pad_segments([flat[i] for i in batch], pad_token_id)
            encoded = model.encode_segments(ids.to(device), mask.to(device)).float().cpu()  # (b, C)
            for row, index in enumerate(batch):
                vectors[index] = encoded[row]
            bar.update(int(mask.sum()))
    bar.close()
    model.train(was_training)
    out, start = [], 0
    for segments in documents:
        out.append(torch.stack(vectors[start : start + len(segments)]))
        start += len(segments)
    return out


class SegmentVectorCache:
    """Frozen-encoder segment vectors on disk, one small file per document."""

    encoded_documents = 0  # documents this process encoded (not found in any cache): cross-validation reports it

    def __init__(self, model, cache_dir: str | os.PathLike | None = None, bf16: bool | None = None):
        self.model = model
        self.bf16 = bf16_autocast_default(model.device) if bf16 is None else bf16
        self.folder = Path(cache_dir or default_cache_dir()) / "segment-vectors" / self._encoder_key()

    def _encoder_key(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for name, tensor in sorted(self.model.encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        digest.update(f"pooling={self.model.config.pooling};bf16={self.bf16}".encode())
        return digest.hexdigest()

    def _path(self, segments: list[list[int]]) -> Path:
        digest = hashlib.blake2b(digest_size=16)
        for segment in segments:
            digest.update(torch.tensor(segment, dtype=torch.int64).numpy().tobytes())
            digest.update(b"|")
        key = digest.hexdigest()
        return self.folder / key[:2] / f"{key}.pt"

    def vectors(self, documents: list[list[list[int]]], pad_token_id: int, **encode_kwargs) -> list[torch.Tensor]:
        """(N_d, C) vectors of every document, encoding only those not cached yet."""
        paths = [self._path(segments) for segments in documents]
        out: list[torch.Tensor | None] = [None] * len(documents)
        missing = []
        for index, path in enumerate(paths):
            if path.is_file():
                try:
                    out[index] = torch.load(path, weights_only=True)
                    continue
                except (RuntimeError, EOFError, OSError):  # a torn file from an interrupted run: encode again
                    pass
            missing.append(index)
        if missing:
            SegmentVectorCache.encoded_documents += len(missing)
            encoded = encode_documents(
                self.model, [documents[i] for i in missing], pad_token_id, bf16=self.bf16, **encode_kwargs
            )
            for index, vectors in zip(missing, encoded):
                out[index] = vectors
                _save_atomically(vectors, paths[index])
        return out


def _save_atomically(tensor: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(tensor.clone(), temporary)
    os.replace(temporary, path)
