"""A real long-document classification set: the Linux kernel documentation, labelled by subsystem.

    from longdoc.datasets.kernel_docs import ensure_kernel_docs
    data = ensure_kernel_docs()            # finds or fetches the docs, builds once, then reuses
    train = data.read("train")             # [{"id": ..., "text": ..., "label": ...}, ...]

    python -m longdoc.datasets.kernel_docs [--out DIR] [--docs DIR] [--cache DIR]

Source. The ``Documentation/`` tree of the Debian package ``linux-doc-6.1``, which installs it as
``/usr/share/doc/linux-doc-6.1/Documentation`` (gzipped: ``*.rst.gz`` and ``*.txt.gz`` are used,
devicetree ``*.yaml.gz``, ``*.svg.gz``, extension-less ABI files... are not). When it is not
installed, ``apt-get download`` fetches the .deb into a cache folder (``$LONGDOC_CACHE/kernel-docs``,
else ``~/.cache/longdoc/kernel-docs``) and unpacked there (``dpkg-deb -x``, or in pure Python);
nothing is installed system-wide.

Documents (one per file):
  * files ``*.rst`` and ``*.txt``, plain or gzipped; symlinks are skipped (they would be duplicates);
  * id = path relative to ``Documentation/`` without ``.gz`` (``networking/ip-sysctl.rst``);
  * label = the top-level folder under ``Documentation/`` (the subsystem: ``networking``,
    ``filesystems``...); files directly in ``Documentation/`` have no subsystem and are left out;
  * text = the file decoded as UTF-8 (undecodable bytes replaced), lines holding an
    ``SPDX-License-Identifier`` removed (boilerplate, not content), trailing whitespace of every
    line and leading/trailing blank lines stripped; the reStructuredText is otherwise kept as is;
  * kept: documents of at least ``min_words`` (1000) whitespace-separated words, in classes that
    still have at least ``min_class_size`` (10) documents after that; ``exclude_classes``
    (``--exclude LABEL``) leaves out whole classes, e.g. ``translations`` (non-English copies of
    documents of other classes).

Split (fixed and deterministic, stratified by class): inside each class, documents are ordered by
the sha256 of their id; the first ``round(0.2 * n)`` are test, the next ``round(0.2 * n)`` dev, the
rest train (about 60/20/20). Adding or removing a document only moves documents of its own class.

Output (byte-for-byte reproducible): ``train.jsonl``, ``dev.jsonl``, ``test.jsonl`` with one
``{"id", "label", "text"}`` object per line, sorted by id (``json.dumps(ensure_ascii=False,
sort_keys=True)``, ``\\n`` line endings), and ``MANIFEST.json`` (source package and version,
selection rules, per-split and per-class counts, the sha256 of each file, and a combined checksum:
the sha256 of the ``sha256sum``-style lines ``"<sha256>  <file>\\n"`` of the three files in name order).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from .dataset_files import combined_checksum, sha256_file, write_atomic, write_split_files

logger = logging.getLogger("longdoc.datasets.kernel_docs")  # not __name__: "__main__" under python -m

PACKAGE = "linux-doc-6.1"
DOCS_IN_PACKAGE = Path("usr/share/doc") / PACKAGE / "Documentation"
SYSTEM_DOCS_DIRS: tuple[Path, ...] = (Path("/") / DOCS_IN_PACKAGE,)
DOWNLOAD_CMD: tuple[str, ...] = ("apt-get", "download", PACKAGE)
DOWNLOAD_TIMEOUT_S = 900

DOC_SUFFIXES = (".rst", ".txt")
SPDX_MARKER = "SPDX-License-Identifier"
SPLITS = ("train", "dev", "test")
HELD_OUT_FRACTION = 0.2  # for test and for dev, each
MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 1

UNPACKED = "unpacked"  # cache subfolder holding the unpacked .deb
UNPACKED_INFO = "unpacked.json"  # written next to it once unpacking has finished


class KernelDocsError(RuntimeError):
    """The kernel documentation set could not be built (bad input tree, bad archive...)."""


class KernelDocsUnavailable(KernelDocsError):
    """The documentation tree is neither on this machine nor fetchable with apt."""


@dataclass(frozen=True)
class Document:
    id: str  # path relative to Documentation/, without .gz
    label: str  # top-level folder: the subsystem
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class KernelDocsSet:
    """A built set on disk: where its files are, what is in them, and their checksums."""

    out_dir: Path
    labels: tuple[str, ...]
    counts: dict[str, int]  # split -> documents
    class_counts: dict[str, dict[str, int]]  # label -> split -> documents
    checksums: dict[str, str]  # file name -> sha256
    checksum: str  # combined, see the module docstring
    median_words: float
    source: dict

    @property
    def paths(self) -> dict[str, Path]:
        return {split: self.out_dir / f"{split}.jsonl" for split in SPLITS}

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST

    def read(self, split: str) -> list[dict]:
        """The documents of one split, as written (dicts with id, label, text)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        with open(self.paths[split], encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    @classmethod
    def from_manifest(cls, out_dir: str | os.PathLike) -> KernelDocsSet:
        out_dir = Path(out_dir)
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return cls(
            out_dir=out_dir,
            labels=tuple(manifest["labels"]),
            counts=manifest["counts"],
            class_counts=manifest["class_counts"],
            checksums=manifest["sha256"],
            checksum=manifest["checksum"],
            median_words=manifest["median_words"],
            source=manifest["source"],
        )


def _log(message: str) -> None:
    logger.info(f"[kernel_docs] {message}")


# --------------------------------------------------------------------------- locating / fetching


def default_cache_dir() -> Path:
    root = os.environ.get("LONGDOC_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "longdoc") / "kernel-docs"


def find_documentation(
    cache_dir: str | os.PathLike | None = None,
    *,
    system_dirs: Sequence[Path] = SYSTEM_DOCS_DIRS,
    download_cmd: Sequence[str] = DOWNLOAD_CMD,
) -> Path:
    """The ``Documentation/`` folder: installed, already in the cache, or downloaded and unpacked.

    ``download_cmd`` runs with the cache folder as working directory and must leave
    ``linux-doc-6.1_*.deb`` there; it is a parameter so that it can be replaced (mirrors, tests).
    """
    for folder in system_dirs:
        if _looks_like_docs(folder):
            _log(f"using the installed documentation in {folder}")
            return folder
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache_dir / UNPACKED / DOCS_IN_PACKAGE
    if (cache_dir / UNPACKED_INFO).is_file() and _looks_like_docs(cached):
        _log(f"using the unpacked documentation cached in {cached}")
        return cached
    deb = _cached_deb(cache_dir)
    if deb is not None:
        _log(f"reusing the downloaded {deb}")
    else:
        deb = download_deb(cache_dir, download_cmd, tried=system_dirs)
    unpack_into_cache(deb, cache_dir)
    if not _looks_like_docs(cached):
        raise KernelDocsError(
            f"{deb.name} was unpacked into {cache_dir / UNPACKED} but holds no {DOCS_IN_PACKAGE} "
            f"with .rst/.txt files: the package layout changed. Pass --docs DIR pointing at a "
            f"Documentation folder instead."
        )
    return cached


def _looks_like_docs(folder: Path) -> bool:
    return folder.is_dir() and any(True for _ in _iter_doc_files(folder))


def _cached_deb(cache_dir: Path) -> Path | None:
    debs = sorted(cache_dir.glob(f"{PACKAGE}_*.deb"), key=lambda p: p.stat().st_mtime)
    return debs[-1] if debs else None


def download_deb(cache_dir: Path, cmd: Sequence[str] = DOWNLOAD_CMD, tried: Sequence[Path] = ()) -> Path:
    """Run ``cmd`` (``apt-get download linux-doc-6.1``) in ``cache_dir`` and return the .deb."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    where = ", ".join(str(p) for p in tried) or "no system folder"
    fix = (
        "To fix: run `apt-get update` (package lists are needed) and retry, check the network, or "
        "pass --docs DIR (docs_dir=...) pointing at an unpacked Documentation folder."
    )
    _log(f"{PACKAGE} is not installed ({where}); downloading it: `{' '.join(cmd)}` in {cache_dir} (~40 MB)")
    try:
        result = subprocess.run(
            list(cmd), cwd=cache_dir, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S
        )
    except FileNotFoundError as error:
        raise KernelDocsUnavailable(
            f"looked for the kernel documentation in {where} and tried to download {PACKAGE} with "
            f"`{' '.join(cmd)}`, but {cmd[0]!r} is not available on this machine ({error}). "
            f"Pass --docs DIR (docs_dir=...) pointing at an unpacked Documentation folder."
        ) from error
    except subprocess.TimeoutExpired as error:
        raise KernelDocsUnavailable(
            f"`{' '.join(cmd)}` (in {cache_dir}) did not finish within {DOWNLOAD_TIMEOUT_S} s. {fix}"
        ) from error
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-8:])
        raise KernelDocsUnavailable(
            f"looked for the kernel documentation in {where}, then `{' '.join(cmd)}` (in {cache_dir}) "
            f"failed with exit status {result.returncode}:\n{tail}\n{fix}"
        )
    deb = _cached_deb(cache_dir)
    if deb is None:
        raise KernelDocsUnavailable(
            f"`{' '.join(cmd)}` succeeded but left no {PACKAGE}_*.deb in {cache_dir}. {fix}"
        )
    _log(f"downloaded {deb} ({deb.stat().st_size / 1e6:.1f} MB)")
    return deb


def unpack_into_cache(deb: Path, cache_dir: Path) -> Path:
    """Unpack ``deb`` into ``cache_dir/unpacked``; a half-done unpack is never taken for a cache."""
    partial, final = cache_dir / f"{UNPACKED}.partial", cache_dir / UNPACKED
    for stale in (partial, final):
        shutil.rmtree(stale, ignore_errors=True)
    _log(f"unpacking {deb.name} into {final}")
    try:
        unpack_deb(deb, partial)
    except (KernelDocsError, OSError, EOFError, tarfile.TarError, subprocess.CalledProcessError) as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise KernelDocsError(
            f"could not unpack {deb} ({error}). The download may be truncated: delete {deb} and retry."
        ) from error
    partial.rename(final)
    info = {**_deb_name_fields(deb), "deb_sha256": sha256_file(deb)}
    (cache_dir / UNPACKED_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return final


def _deb_name_fields(deb: Path) -> dict:
    """``linux-doc-6.1_6.1.192-2_all.deb`` -> package, version (``%3a`` is an epoch colon), file."""
    parts = deb.name.removesuffix(".deb").split("_")
    version = unquote(parts[1]) if len(parts) >= 2 else None
    return {"package": parts[0], "version": version, "deb": deb.name}


# --------------------------------------------------------------------------- .deb unpacking


def unpack_deb(deb: str | os.PathLike, dest: str | os.PathLike, *, use_dpkg: bool | None = None) -> None:
    """Extract the files of a .deb into ``dest``, like ``dpkg-deb -x``.

    ``use_dpkg=None`` uses dpkg-deb when it is installed, else the pure-Python reader below.
    """
    deb, dest = Path(deb), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if use_dpkg is None:
        use_dpkg = shutil.which("dpkg-deb") is not None
    if use_dpkg:
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
        if result.returncode != 0:
            tail = "; ".join(result.stderr.strip().splitlines()[-3:])
            raise KernelDocsError(f"dpkg-deb -x failed with exit status {result.returncode}: {tail}")
        return
    members = dict(_ar_members(deb))
    names = [name for name in members if name.startswith("data.tar")]
    if not names:
        raise KernelDocsError(f"{deb} has no data.tar.* member (members: {', '.join(members) or 'none'})")
    _extract_tar(_decompress_data(names[0], members[names[0]]), dest)


_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = struct.Struct("16s12s6s6s8s10s2s")  # name, mtime, uid, gid, mode, size, magic


def _ar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each member of an ``ar`` archive (the container format of a .deb)."""
    data = path.read_bytes()
    if not data.startswith(_AR_MAGIC):
        raise KernelDocsError(f"{path} is not a .deb: it does not start with the ar magic {_AR_MAGIC!r}")
    pos = len(_AR_MAGIC)
    while pos + _AR_HEADER.size <= len(data):
        name, _, _, _, _, size, magic = _AR_HEADER.unpack_from(data, pos)
        if magic != b"`\n":
            raise KernelDocsError(f"{path}: corrupt ar member header at byte {pos}")
        start, size = pos + _AR_HEADER.size, int(size.decode("ascii"))
        if start + size > len(data):
            raise KernelDocsError(f"{path} is truncated: member {name.decode().strip()} needs {size} bytes")
        yield name.decode("ascii").strip().rstrip("/"), data[start : start + size]
        pos = start + size + size % 2  # members are aligned on even offsets


def _decompress_data(name: str, payload: bytes) -> bytes:
    """The uncompressed tar of a data.tar[.gz|.xz|.bz2|.zst] member."""
    if name.endswith(".zst"):
        return _unzstd(payload)
    return payload  # tarfile's "r:*" handles none/gz/xz/bz2 itself


def _unzstd(payload: bytes) -> bytes:
    try:  # Python >= 3.14
        from compression import zstd  # type: ignore[import-not-found]

        return zstd.decompress(payload)
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload)).read()
    except ImportError:
        pass
    if shutil.which("zstd"):
        return subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, check=True).stdout
    raise KernelDocsError(
        "the .deb holds data.tar.zst but this Python cannot decompress zstd: install the `zstd` "
        "tool or the `zstandard` package, or use dpkg-deb."
    )


def _extract_tar(tar_bytes: bytes, dest: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.12, 3.11.4, 3.10.12
            tar.extractall(dest, filter=_data_filter_or_skip)
        else:
            tar.extractall(dest, members=[m for m in tar.getmembers() if _is_safe_member(m, dest)])


def _data_filter_or_skip(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """The stdlib "data" filter, but skipping (not failing on) members that would escape ``dest``."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as error:
        _log(f"skipping unsafe archive member {member.name!r}: {error}")
        return None


def _is_safe_member(member: tarfile.TarInfo, dest: Path) -> bool:
    root = dest.resolve()
    target = (root / member.name).resolve()
    if member.isdev() or not target.is_relative_to(root):
        return False
    if member.issym() or member.islnk():
        base = target.parent if member.issym() else root
        return (base / member.linkname).resolve().is_relative_to(root)
    return True


# --------------------------------------------------------------------------- documents


def _iter_doc_files(docs_dir: Path) -> Iterator[Path]:
    for path in docs_dir.rglob("*"):
        name = path.name.removesuffix(".gz")
        if name.endswith(DOC_SUFFIXES) and path.is_file() and not path.is_symlink():
            yield path


def clean_text(raw: str) -> str:
    """Drop SPDX lines, trailing whitespace of every line, and leading/trailing blank lines."""
    lines = [line.rstrip() for line in raw.split("\n") if SPDX_MARKER not in line]
    return "\n".join(lines).strip("\n")


def read_document(path: Path, docs_dir: Path) -> Document | None:
    """The document of one file, or None for files directly in Documentation/ (no subsystem)."""
    rel = path.relative_to(docs_dir)
    if len(rel.parts) < 2:
        return None
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise KernelDocsError(f"{path} is not a valid gzip file ({error}); re-fetch the docs") from error
    doc_id = rel.as_posix().removesuffix(".gz")
    return Document(id=doc_id, label=rel.parts[0], text=clean_text(data.decode("utf-8", errors="replace")))


def collect_documents(docs_dir: Path) -> list[Document]:
    """Every documentation file in a subsystem folder, sorted by id."""
    docs: dict[str, Document] = {}
    for path in _iter_doc_files(docs_dir):
        doc = read_document(path, docs_dir)
        if doc is None:
            continue
        if doc.id in docs:
            raise KernelDocsError(
                f"{doc.id} exists both plain and gzipped in {docs_dir}: remove one of them"
            )
        docs[doc.id] = doc
    return [docs[doc_id] for doc_id in sorted(docs)]


def select_documents(
    docs: Sequence[Document], min_words: int, min_class_size: int, exclude_classes: Sequence[str] = ()
) -> list[Document]:
    """Long documents (>= min_words) of classes that keep >= min_class_size of them."""
    long = [d for d in docs if d.words >= min_words and d.label not in set(exclude_classes)]
    sizes = Counter(d.label for d in long)
    return [d for d in long if sizes[d.label] >= min_class_size]


def split_documents(docs: Sequence[Document]) -> dict[str, list[Document]]:
    """The stratified sha256 split of the module docstring; each split sorted by id."""
    by_class: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        by_class[doc.label].append(doc)
    splits: dict[str, list[Document]] = {split: [] for split in SPLITS}
    for members in by_class.values():
        members = sorted(members, key=lambda d: hashlib.sha256(d.id.encode("utf-8")).hexdigest())
        held_out = round(HELD_OUT_FRACTION * len(members))
        splits["test"] += members[:held_out]
        splits["dev"] += members[held_out : 2 * held_out]
        splits["train"] += members[2 * held_out :]
    return {split: sorted(members, key=lambda d: d.id) for split, members in splits.items()}


# --------------------------------------------------------------------------- provenance


def describe_source(docs_dir: Path) -> dict:
    """Package and version of the tree: from our unpack record, the Debian changelog, or dpkg."""
    docs_dir = Path(docs_dir)
    source: dict = {"package": None, "version": None}
    if docs_dir.as_posix().endswith(DOCS_IN_PACKAGE.as_posix()):
        unpacked_root = docs_dir.parents[len(DOCS_IN_PACKAGE.parts) - 1]
        info = unpacked_root.parent / UNPACKED_INFO
        if unpacked_root.name == UNPACKED and info.is_file():
            source.update(json.loads(info.read_text(encoding="utf-8")))
            source["how"] = "apt-get download"
            return source
    changelog = docs_dir.parent / "changelog.Debian.gz"
    if changelog.is_file():
        first = gzip.decompress(changelog.read_bytes()).decode("utf-8", "replace").split("\n", 1)[0]
        if "(" in first and ")" in first:  # "linux (6.1.192-2) bookworm-security; urgency=high"
            source.update(package=docs_dir.parent.name, version=first.split("(", 1)[1].split(")", 1)[0])
            source["how"] = "changelog.Debian.gz"
            return source
    if docs_dir.resolve() in {p.resolve() for p in SYSTEM_DOCS_DIRS} and shutil.which("dpkg-query"):
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True
        )
        if result.returncode == 0 and result.stdout:
            source.update(package=PACKAGE, version=result.stdout.strip(), how="dpkg-query")
    return source




def selection_rules(min_words: int, min_class_size: int, exclude_classes: Sequence[str] = ()) -> dict:
    """What decides the content of a set; a set built under other rules is never reused."""
    return {
        "format_version": FORMAT_VERSION,
        "files": (
            "Documentation/**/*.rst and *.txt, plain or .gz; symlinks and files directly in Documentation/ skipped"
        ),
        "label": "top-level folder under Documentation/",
        "text": "utf-8 (errors replaced); SPDX-License-Identifier lines removed; trailing whitespace stripped",
        "min_words": min_words,
        "min_class_size": min_class_size,
        "exclude_classes": sorted(exclude_classes),
        "split": "per class, by sha256(id): test = first round(0.2 n), dev = next round(0.2 n), train = rest",
    }


# --------------------------------------------------------------------------- building




def _resolve_docs_dir(docs_dir: str | os.PathLike) -> Path:
    """Accept the Documentation folder itself or a folder holding one (the package's doc folder)."""
    docs_dir = Path(docs_dir)
    if not _looks_like_docs(docs_dir) and _looks_like_docs(docs_dir / "Documentation"):
        docs_dir = docs_dir / "Documentation"
    if not docs_dir.is_dir():
        raise KernelDocsError(f"--docs {docs_dir} is not a folder: point it at an unpacked Documentation/ folder")
    return docs_dir


def build_kernel_docs(
    out_dir: str | os.PathLike,
    docs_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    min_words: int = 1000,
    min_class_size: int = 10,
    exclude_classes: Sequence[str] = (),
) -> KernelDocsSet:
    """Build the set into ``out_dir`` from ``docs_dir`` (default: :func:`find_documentation`)."""
    docs_dir = _resolve_docs_dir(docs_dir) if docs_dir is not None else find_documentation(cache_dir)
    _log(f"reading {docs_dir}")
    every = collect_documents(docs_dir)
    docs = select_documents(every, min_words, min_class_size, exclude_classes)
    if not docs:
        raise KernelDocsError(
            f"no documents left in {docs_dir}: {len(every)} files in subsystem folders, none of "
            f">= {min_words} words in a class of >= {min_class_size} such documents. Is it a kernel "
            f"Documentation/ folder? Otherwise lower min_words/min_class_size."
        )
    _log(f"{len(every)} files in subsystem folders, {len(docs)} kept; writing {out_dir}")
    splits = split_documents(docs)

    out_dir = Path(out_dir)
    records = {split: [{"id": d.id, "label": d.label, "text": d.text} for d in members]
               for split, members in splits.items()}
    checksums = write_split_files(out_dir, records, MANIFEST)

    labels = sorted({d.label for d in docs})
    class_counts = {
        label: {split: sum(d.label == label for d in splits[split]) for split in SPLITS} for label in labels
    }
    manifest = {
        "source": describe_source(docs_dir),
        "rules": selection_rules(min_words, min_class_size, exclude_classes),
        "documents": len(docs),
        "labels": labels,
        "counts": {split: len(splits[split]) for split in SPLITS},
        "class_counts": class_counts,
        "median_words": statistics.median(d.words for d in docs),
        "total_words": sum(d.words for d in docs),
        "sha256": checksums,
        "checksum": combined_checksum(checksums),
    }
    text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_atomic(out_dir / MANIFEST, text.encode("utf-8"))
    return KernelDocsSet.from_manifest(out_dir)


def _reusable(out_dir: Path, rules: dict) -> bool:
    """True when out_dir holds a set built under ``rules`` whose files match their checksums."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        checksums = manifest["sha256"]
        if manifest["rules"] != rules or set(checksums) != {f"{s}.jsonl" for s in SPLITS}:
            return False
        return all(sha256_file(out_dir / name) == sha for name, sha in checksums.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_kernel_docs(
    out_dir: str | os.PathLike | None = None,
    docs_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    min_words: int = 1000,
    min_class_size: int = 10,
    exclude_classes: Sequence[str] = (),
    rebuild: bool = False,
) -> KernelDocsSet:
    """The set in ``out_dir`` (default: ``<cache>/dataset``), built only if missing, changed,
    built under other rules, or ``rebuild``. The source tree is not re-read to decide (that is what
    makes reuse cheap), so pass ``rebuild=True`` after pointing ``docs_dir`` at another tree.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out_dir = Path(out_dir) if out_dir is not None else cache_dir / "dataset"
    if not rebuild and _reusable(out_dir, selection_rules(min_words, min_class_size, exclude_classes)):
        _log(f"reusing the set in {out_dir} (checksums match)")
        return KernelDocsSet.from_manifest(out_dir)
    return build_kernel_docs(out_dir, docs_dir, cache_dir, min_words, min_class_size, exclude_classes)


# --------------------------------------------------------------------------- command line


def summary(data: KernelDocsSet) -> str:
    sizes = sorted(data.class_counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    version = " ".join(str(v) for v in (data.source.get("package"), data.source.get("version")) if v)
    return "\n".join(
        [
            f"kernel docs ({version or 'unknown source'}): {sum(data.counts.values())} documents, "
            f"{len(data.labels)} classes, median {data.median_words:g} words",
            "splits: " + ", ".join(f"{split} {data.counts[split]}" for split in SPLITS),
            "classes: " + ", ".join(f"{label} {sum(c.values())}" for label, c in sizes),
            f"files: {data.out_dir} (checksum {data.checksum})",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m longdoc.datasets.kernel_docs",
        description="Build the Linux kernel documentation classification set (label = subsystem folder).",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: <cache>/dataset)")
    parser.add_argument("--docs", type=Path, help="an unpacked Documentation/ folder (default: find or fetch)")
    parser.add_argument(
        "--cache", type=Path,
        help="cache folder (default: $LONGDOC_CACHE/kernel-docs, else ~/.cache/longdoc/kernel-docs)",
    )
    parser.add_argument("--min-words", type=int, default=1000, metavar="N", help="shortest document kept")
    parser.add_argument("--min-class-size", type=int, default=10, metavar="N", help="smallest class kept")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="LABEL", help="leave out a class (repeatable)"
    )
    parser.add_argument("--rebuild", action="store_true", help="build even if a matching set exists")
    args = parser.parse_args(argv)
    from ..logs import show_progress

    show_progress()
    try:
        data = ensure_kernel_docs(
            args.out, args.docs, args.cache, args.min_words, args.min_class_size, args.exclude, args.rebuild
        )
    except KernelDocsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
