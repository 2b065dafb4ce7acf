"""Shared builder of classification sets made from the documentation in Debian packages.

A set module (``postgres_docs``, ``man_sections``) says only which packages it needs, how a file
becomes a document and what its label is; this module does the rest the same way for every set:

* fetching: ``apt-get download`` of each package into a cache folder, unpacked there with
  :func:`longdoc.datasets.kernel_docs.unpack_deb` (nothing installed system-wide); the package
  versions and .deb checksums are recorded;
* selection: documents of at least ``min_words`` words in classes of at least ``min_class_size``;
* near-duplicate grouping: MinHash over word 5-shingles (64 hashes, 16 bands of 4), candidate
  pairs whose estimated Jaccard similarity is at least ``NEAR_DUPLICATE_JACCARD`` are joined, and
  the connected components are the groups, named by their smallest id (a set module may also give
  its own group key, e.g. one stem across versions);
* split (fixed, stratified, near-duplicates never cross splits): a group's label is the label of
  its smallest id; inside each class, groups are ordered by the sha256 of their name and fill test
  until it holds ``round(0.2 n)`` documents of the class, then dev, the rest going to train;
* output (byte-for-byte reproducible): ``{train,dev,test}.jsonl`` of ``{"group", "id", "label",
  "text"}`` sorted by id, and ``MANIFEST.json`` with the source packages and versions, the rules,
  the counts, the sha256 of every file and their combined checksum (as for kernel docs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset_files import combined_checksum, sha256_file, write_atomic, write_split_files

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
HELD_OUT_FRACTION = 0.2  # of every class, for test and for dev each
MANIFEST = "MANIFEST.json"
NEAR_DUPLICATE_JACCARD = 0.5
SHINGLE_WORDS = 5
MINHASH_BANDS, MINHASH_ROWS = 16, 4
DOWNLOAD_TIMEOUT_S = 900


class PackageSetError(RuntimeError):
    """A set could not be built: the package is unavailable or holds nothing usable."""


@dataclass(frozen=True)
class LabelledDocument:
    id: str
    label: str
    text: str
    group: str | None = None  # a set's own near-duplicate key; None: MinHash decides alone

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class PackageSet:
    """A built set on disk (its MANIFEST.json read back)."""

    out_dir: Path
    manifest: dict

    @property
    def paths(self) -> dict[str, Path]:
        return {split: self.out_dir / f"{split}.jsonl" for split in SPLITS}

    @property
    def labels(self) -> list[str]:
        return self.manifest["labels"]

    @property
    def counts(self) -> dict[str, int]:
        return self.manifest["counts"]

    @property
    def checksum(self) -> str:
        return self.manifest["checksum"]

    @property
    def source(self) -> dict:
        return self.manifest["source"]

    def read(self, split: str) -> list[dict]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        with open(self.paths[split], encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    @classmethod
    def from_dir(cls, out_dir: str | os.PathLike) -> "PackageSet":
        out_dir = Path(out_dir)
        return cls(out_dir, json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")))

    def summary(self) -> str:
        m = self.manifest
        versions = ", ".join(f"{p['package']} {p['version']}" for p in m["source"]["packages"])
        classes = sorted(m["class_counts"].items(), key=lambda item: (-sum(item[1].values()), item[0]))
        return "\n".join([
            f"{m['name']} ({versions}): {m['documents']} documents, {len(m['labels'])} classes, "
            f"median {m['median_words']:g} words, {m['groups']} near-duplicate groups",
            "splits: " + ", ".join(f"{split} {m['counts'][split]}" for split in SPLITS),
            "classes: " + ", ".join(f"{label} {sum(c.values())}" for label, c in classes),
            f"files: {self.out_dir} (checksum {m['checksum']})",
        ])


# --------------------------------------------------------------------------- fetching


def cache_root() -> Path:
    root = os.environ.get("LONGDOC_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "longdoc"


def fetch_packages(packages: Sequence[str], cache_dir: Path) -> tuple[Path, list[dict]]:
    """The folder the packages are unpacked in (``cache_dir/unpacked``) and, per package, its name,
    version and .deb sha256; downloads and unpacks only what the cache does not hold yet."""
    from .kernel_docs import unpack_deb  # the .deb reader (dpkg-deb, or pure Python)

    cache_dir.mkdir(parents=True, exist_ok=True)
    root, record = cache_dir / "unpacked", cache_dir / "unpacked.json"
    done = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else []
    if sorted(p["package"] for p in done) == sorted(packages) and root.is_dir():
        return root, done
    shutil.rmtree(root, ignore_errors=True)
    fetched = []
    for package in packages:
        deb = download_deb(package, cache_dir)
        logger.info("unpacking %s into %s", deb.name, root)
        unpack_deb(deb, root)
        _, version, _ = deb.name.removesuffix(".deb").split("_")
        fetched.append({"package": package, "version": version.replace("%3a", ":"), "deb_sha256": sha256_file(deb)})
    write_atomic(record, (json.dumps(fetched, indent=1, sort_keys=True) + "\n").encode())
    return root, fetched


def download_deb(package: str, cache_dir: Path) -> Path:
    """``apt-get download PACKAGE`` into ``cache_dir`` (reusing a .deb already there)."""
    debs = sorted(cache_dir.glob(f"{package}_*.deb"))
    if debs:
        return debs[-1]
    fix = (f"run `apt-get update` and retry, or check the network; `apt-get download {package}` must be able "
           f"to reach a Debian mirror")
    logger.info("downloading %s with apt-get into %s", package, cache_dir)
    try:
        result = subprocess.run(["apt-get", "download", package], cwd=cache_dir, capture_output=True, text=True,
                                timeout=DOWNLOAD_TIMEOUT_S)
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        raise PackageSetError(f"could not download {package} ({error}): {fix}") from error
    debs = sorted(cache_dir.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise PackageSetError(f"`apt-get download {package}` failed (exit {result.returncode}):\n{tail}\n{fix}")
    return debs[-1]


# --------------------------------------------------------------------------- selection and split


def select_documents(docs: Sequence[LabelledDocument], min_words: int, min_class_size: int) -> list[LabelledDocument]:
    """Documents of >= min_words words in classes that keep >= min_class_size of them, sorted by id."""
    long = [d for d in docs if d.words >= min_words]
    sizes = Counter(d.label for d in long)
    return sorted((d for d in long if sizes[d.label] >= min_class_size), key=lambda d: d.id)


def _shingle_hashes(text: str) -> np.ndarray:
    words = re.findall(r"\w+", text.lower())
    shingles = {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(max(1, len(words) - SHINGLE_WORDS + 1))}
    return np.array(sorted(int.from_bytes(hashlib.blake2b(s.encode(), digest_size=7).digest(), "little")
                           for s in shingles), dtype=np.uint64)


def minhash_signatures(texts: Sequence[str]) -> np.ndarray:
    """(D, BANDS * ROWS) MinHash signatures (fixed seeds, so reproducible). Each permutation is a
    multiply-shift hash, (a x + b) mod 2^64 >> 32 with a odd: it mixes the bits, so the minimum is a
    different shingle for every permutation."""
    size = MINHASH_BANDS * MINHASH_ROWS
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1 << 63, size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 1 << 63, size, dtype=np.uint64)
    signatures = np.empty((len(texts), size), dtype=np.uint64)
    with np.errstate(over="ignore"):  # the wrap-around mod 2^64 is the hash
        for row, text in enumerate(texts):
            hashes = _shingle_hashes(text)
            signatures[row] = ((hashes[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)).min(0)
    return signatures


def near_duplicate_groups(docs: Sequence[LabelledDocument], threshold: float = NEAR_DUPLICATE_JACCARD) -> dict[str, str]:
    """id -> group name (its smallest id): documents sharing a set's own group key, or whose MinHash
    Jaccard estimate is >= threshold (found through LSH bands), transitively, are one group."""
    parent = list(range(len(docs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[max(find(i), find(j))] = min(find(i), find(j))

    by_key: dict[str, int] = {}
    for index, doc in enumerate(docs):
        if doc.group is not None:
            join(by_key.setdefault(doc.group, index), index)
    signatures = minhash_signatures([d.text for d in docs])
    for band in range(MINHASH_BANDS):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for index, sig in enumerate(signatures[:, band * MINHASH_ROWS : (band + 1) * MINHASH_ROWS]):
            buckets[sig.tobytes()].append(index)
        for members in buckets.values():
            for other in members[1:]:
                if find(other) != find(members[0]) and np.mean(signatures[members[0]] == signatures[other]) >= threshold:
                    join(members[0], other)
    ids = [d.id for d in docs]
    names: dict[int, str] = {}
    for index in sorted(range(len(docs)), key=lambda i: ids[i]):
        names.setdefault(find(index), ids[index])
    return {ids[i]: names[find(i)] for i in range(len(docs))}


def split_by_group(docs: Sequence[LabelledDocument], groups: dict[str, str]) -> dict[str, list[LabelledDocument]]:
    """The stratified group split of the module docstring; each split sorted by id."""
    members: dict[str, list[LabelledDocument]] = defaultdict(list)
    for doc in docs:
        members[groups[doc.id]].append(doc)
    by_class: dict[str, list[str]] = defaultdict(list)
    for name, group in members.items():
        by_class[min(group, key=lambda d: d.id).label].append(name)
    splits: dict[str, list[LabelledDocument]] = {split: [] for split in SPLITS}
    for names in by_class.values():
        names.sort(key=lambda n: hashlib.sha256(n.encode("utf-8")).hexdigest())
        held_out = round(HELD_OUT_FRACTION * sum(len(members[n]) for n in names))
        filled = {"test": 0, "dev": 0}
        for name in names:
            split = next((s for s in ("test", "dev") if filled[s] < held_out), "train")
            filled[split] = filled.get(split, 0) + len(members[name])
            splits[split] += members[name]
    return {split: sorted(group, key=lambda d: d.id) for split, group in splits.items()}


# --------------------------------------------------------------------------- writing and reuse


def build_set(name: str, docs: Sequence[LabelledDocument], out_dir: Path, source: dict, rules: dict,
              min_words: int, min_class_size: int) -> PackageSet:
    """Select, group, split and write ``docs``; ``rules`` (how documents and labels were made) and
    the selection go into the manifest, and a later build reuses the files only under equal rules."""
    kept = select_documents(docs, min_words, min_class_size)
    if not kept:
        raise PackageSetError(f"{name}: none of {len(docs)} documents has >= {min_words} words in a class of >= "
                              f"{min_class_size} such documents; lower --min-words / --min-class-size")
    groups = near_duplicate_groups(kept)
    splits = split_by_group(kept, groups)
    records = {split: [{"group": groups[d.id], "id": d.id, "label": d.label, "text": d.text} for d in members]
               for split, members in splits.items()}
    checksums = write_split_files(out_dir, records, MANIFEST)
    labels = sorted({d.label for d in kept})
    manifest = {
        "name": name,
        "source": source,
        "rules": full_rules(rules, min_words, min_class_size),
        "documents": len(kept),
        "groups": len(set(groups.values())),
        "labels": labels,
        "counts": {split: len(members) for split, members in splits.items()},
        "class_counts": {label: {split: sum(d.label == label for d in splits[split]) for split in SPLITS}
                         for label in labels},
        "median_words": statistics.median(d.words for d in kept),
        "total_words": sum(d.words for d in kept),
        "sha256": checksums,
        "checksum": combined_checksum(checksums),
    }
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode())
    return PackageSet.from_dir(out_dir)


def full_rules(rules: dict, min_words: int, min_class_size: int) -> dict:
    return {**rules, "min_words": min_words, "min_class_size": min_class_size,
            "near_duplicates": f"MinHash of word {SHINGLE_WORDS}-shingles, {MINHASH_BANDS} bands of {MINHASH_ROWS}, "
                               f"Jaccard >= {NEAR_DUPLICATE_JACCARD}, connected components",
            "split": "per class, groups by sha256(group): test then dev until each holds round(0.2 n), rest train"}


def reusable(out_dir: Path, rules: dict) -> bool:
    """True when out_dir holds a set built under ``rules`` whose files match their checksums."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return manifest["rules"] == rules and all(
            sha256_file(out_dir / file) == sha for file, sha in manifest["sha256"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_set(name: str, out_dir: Path | None, rules: dict, min_words: int, min_class_size: int,
               collect: Callable[[], tuple[list[LabelledDocument], dict]], rebuild: bool = False) -> PackageSet:
    """The set in ``out_dir`` (default ``<cache>/<name>/dataset``), built by ``collect()`` (documents and
    source description) only when missing, changed, built under other rules, or ``rebuild``."""
    out_dir = Path(out_dir) if out_dir is not None else cache_root() / name / "dataset"
    if not rebuild and reusable(out_dir, full_rules(rules, min_words, min_class_size)):
        logger.info("reusing the set in %s (checksums match)", out_dir)
        return PackageSet.from_dir(out_dir)
    docs, source = collect()
    return build_set(name, docs, out_dir, source, rules, min_words, min_class_size)
