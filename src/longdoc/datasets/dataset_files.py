"""Writing a dataset's split files reproducibly: sorted JSON lines, atomic writes, sha256 checksums.

Shared by the kernel-docs and man-pages builders: a set whose manifest is missing is never
reused, so the manifest is removed first and written last.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def jsonl_bytes(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def combined_checksum(checksums: dict[str, str]) -> str:
    lines = "".join(f"{checksums[name]}  {name}\n" for name in sorted(checksums))
    return hashlib.sha256(lines.encode("ascii")).hexdigest()


def write_split_files(out_dir: str | os.PathLike, splits: dict[str, Iterable[dict]], manifest: str) -> dict[str, str]:
    """`{split}.jsonl` for every split (the old manifest removed first); returns {file name: sha256}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / manifest).unlink(missing_ok=True)  # a set without a manifest is never reused
    checksums = {}
    for split, records in splits.items():
        data = jsonl_bytes(records)
        write_atomic(out_dir / f"{split}.jsonl", data)
        checksums[f"{split}.jsonl"] = hashlib.sha256(data).hexdigest()
    return checksums
