"""A real long-document summarization set: Linux man pages, each summarised by its NAME line.

    from longdoc.datasets.manpages import ensure_manpages, load_manpages
    manifest = ensure_manpages("out/manpages")    # builds once, then reuses (checksums match)
    test = load_manpages("out/manpages", "test")  # [{"id", "text", "summary", "section", "split"}, ...]

    python -m longdoc.datasets.manpages [OUT_DIR] [--limit N] [--min-words N] [--rebuild]

Source. The man pages of the Debian packages ``manpages`` and ``manpages-dev`` (the Linux
man-pages project: system calls, C library functions, devices, file formats, overviews), as
installed under ``/usr/share/man/man*/``. ``dpkg -L manpages manpages-dev`` lists exactly the files
of these two packages, so pages of other packages in the same folders are left out; without dpkg
(or with the packages missing) the build stops with :class:`ManpagesUnavailable` naming the fix,
``apt-get install manpages manpages-dev``. Nothing is downloaded.

Rendering. Pages are rendered to plain text by groff (:func:`longdoc.datasets.roff.render_roff`:
``groff -man -Tutf8`` with a fixed, very long line length, no hyphenation or adjustment, no bold
or underlining), so the text depends on the page and groff's version only, not on the terminal or
the locale: one line per filled paragraph, a blank line between paragraphs, no-fill blocks
(synopses, examples) and ``.TP`` tags on lines of their own. The groff version and its arguments
are recorded in the manifest (``rules.renderer``); without groff the build stops naming the fix,
``apt-get install groff-base``.

Pages (one per file):
  * the files of the packages under ``man*/`` folders, gzipped or plain; symbolic links are aliases
    of another page and are skipped, and so are pages that only hold ``.so other/page`` (Debian
    turns most aliases into symlinks, a few stay ``.so`` pages): each page appears once. A ``.so``
    inside a page with other content is followed (the named file is read in its place);
  * id = file name without ``.gz`` (``open.2``, ``size_t.3type``); section = what follows the last
    dot of the id (``2``, ``3type``);
  * summary = the description after the dash of the NAME section (``open, openat, creat \\- open and
    possibly create a file`` gives ``open and possibly create a file``), whitespace normalised;
  * text = every other section in page order, each as its title line (``SYNOPSIS``,
    ``DESCRIPTION``...) followed by its body;
  * kept: pages with a non-empty summary and a text of at least ``min_words`` (50)
    whitespace-separated words; of pages with exactly the same text, only the first id is kept.

Split (fixed and deterministic, independent of file order, of the machine and of which other pages
are present): ``int(sha1(id), 16) % 100`` below 80 is train, below 90 dev, the rest test.

Output (byte-for-byte reproducible for the same package versions): ``train.jsonl``, ``dev.jsonl``,
``test.jsonl`` with one ``{"id", "section", "split", "summary", "text"}`` object per line, sorted by
id (``json.dumps(ensure_ascii=False, sort_keys=True)``, ``\\n`` line endings), and ``manifest.json``
(package versions, selection rules, counts, what was skipped and why, word and token statistics,
the sha256 of each file and a combined checksum as in :mod:`longdoc.datasets.kernel_docs`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from longdoc.datasets import roff
from longdoc.datasets.dataset_files import combined_checksum, sha256_file, write_atomic, write_split_files
from longdoc.datasets.roff import GroffMissing, RoffError, name_description, render_roff, so_target
from longdoc.logs import show_progress

logger = logging.getLogger("longdoc.datasets.manpages")  # not __name__: "__main__" under python -m

PACKAGES: tuple[str, ...] = ("manpages", "manpages-dev")
INSTALL_HINT = "apt-get install manpages manpages-dev"
SPLITS = ("train", "dev", "test")
SPLIT_PERCENT = {"train": 80, "dev": 10, "test": 10}  # buckets of int(sha1(id), 16) % 100, in order
MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: rendered by groff
MIN_WORDS = 50
SKIP_REASONS = ("alias", "no_name", "short", "duplicate")

_MAN_DIR = re.compile(r"^man[0-9n]\w*$")  # man2, man3, man3type... (not the locale folders: de/man1)
_TOKEN = re.compile(r"\w+|[^\w\s]")  # the "tokens" of the statistics: words and punctuation marks


class ManpagesError(RuntimeError):
    """The man page set could not be built (bad input, unreadable page...)."""


class ManpagesUnavailable(ManpagesError):
    """The packages are not installed, or dpkg is not there to list their files."""


@dataclass(frozen=True)
class Page:
    id: str  # file name without .gz: "open.2"
    section: str  # after the last dot of the id: "2", "3type"
    summary: str  # the NAME description
    text: str  # the other sections

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def split(self) -> str:
        return split_of(self.id)

    def record(self) -> dict:
        return {"id": self.id, "section": self.section, "split": self.split, "summary": self.summary,
                "text": self.text}


def _log(message: str) -> None:
    logger.info(f"[manpages] {message}")


# --------------------------------------------------------------------------- locating the pages


def _dpkg(args: Sequence[str], what: str) -> str:
    tool = args[0]
    if shutil.which(tool) is None:
        raise ManpagesUnavailable(
            f"{tool!r} is not available on this machine, so the files of the Debian packages "
            f"{' and '.join(PACKAGES)} cannot be listed. The man page set needs a Debian-based system "
            f"with them installed: `{INSTALL_HINT}`."
        )
    result = subprocess.run(list(args), capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-4:])
        raise ManpagesUnavailable(
            f"`{' '.join(args)}` failed with exit status {result.returncode} while {what}:\n{tail}\n"
            f"To fix: `{INSTALL_HINT}` (as root; run `apt-get update` first if the package lists are missing)."
        )
    return result.stdout


def package_files(packages: Sequence[str] = PACKAGES) -> list[Path]:
    """The man page files that ``dpkg -L`` lists for ``packages`` (symlinks included), sorted."""
    listed = _dpkg(["dpkg", "-L", *packages], "listing the package files").splitlines()
    pages = {Path(line.strip()) for line in listed if line.strip()}
    pages = {p for p in pages if _MAN_DIR.match(p.parent.name) and p.parent.parent.name == "man"}
    pages = {p for p in pages if p.is_file() or p.is_symlink()}
    if not pages:
        raise ManpagesUnavailable(
            f"dpkg lists no man page files for {', '.join(packages)} (a minimal image may exclude "
            f"/usr/share/man via /etc/dpkg/dpkg.cfg.d/; remove that rule and reinstall: `{INSTALL_HINT}`)."
        )
    return sorted(pages, key=lambda p: (page_id(p), p.as_posix()))


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each package (``dpkg-query -W``)."""
    out = _dpkg(["dpkg-query", "-W", "-f=${Package}\t${Version}\n", *packages], "reading the package versions")
    versions = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return {name: versions.get(name, "") for name in packages}


def page_id(path: str | os.PathLike) -> str:
    return Path(path).name.removesuffix(".gz")


def section_of(page: str) -> str:
    return page.rsplit(".", 1)[1] if "." in page else ""


def split_of(page: str) -> str:
    """train/dev/test from the sha1 of the page id (``"open.2"``); see the module docstring."""
    bucket = int(hashlib.sha1(page.encode("utf-8")).hexdigest(), 16) % 100
    bound = 0
    for split in SPLITS:
        bound += SPLIT_PERCENT[split]
        if bucket < bound:
            return split
    raise AssertionError("SPLIT_PERCENT must add up to 100")


def read_roff(path: str | os.PathLike) -> str:
    """The roff source of a page file, gunzipped when it ends in .gz, decoded as UTF-8."""
    try:
        return roff.read_roff(path)
    except RoffError as error:  # not valid gzip
        raise ManpagesError(f"{error}; reinstall: `{INSTALL_HINT}`") from error.__cause__


# --------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class PageResult:
    """What reading one file gave: a page, or why there is none (``skipped``)."""

    id: str
    page: Page | None = None
    skipped: str | None = None  # "alias", "no_name", "short"


def read_page(path: str | os.PathLike, min_words: int = MIN_WORDS) -> PageResult:
    """Render one page file; symlinks and pure ``.so`` pages are aliases."""
    path = Path(path)
    pid = page_id(path)
    if path.is_symlink():
        return PageResult(pid, skipped="alias")
    source = read_roff(path)
    if so_target(source) is not None:
        return PageResult(pid, skipped="alias")
    try:
        rendered = render_roff(source, include_root=path.parent.parent, read=read_roff)
    except GroffMissing as error:
        raise ManpagesUnavailable(str(error)) from error
    except RoffError as error:
        raise ManpagesError(f"{path}: {error}") from error
    summary = name_description(rendered.get("NAME") or "")
    if not summary:
        return PageResult(pid, skipped="no_name")
    text = rendered.body(exclude=("NAME",))
    page = Page(id=pid, section=section_of(pid), summary=summary, text=text)
    if page.words < min_words:
        return PageResult(pid, skipped="short")
    return PageResult(pid, page=page)


def _candidate_files(files, pages, limit, packages) -> tuple[list[Path], dict | None]:
    source = None
    if files is None:
        files = package_files(packages)
        source = {"packages": package_versions(packages), "how": f"dpkg -L {' '.join(packages)}"}
    files = sorted((Path(f) for f in files), key=lambda p: (page_id(p), p.as_posix()))
    if pages is not None:
        wanted = set(pages)
        files = [f for f in files if page_id(f) in wanted]
        missing = wanted - {page_id(f) for f in files}
        if missing:
            raise ManpagesError(f"no such page among the candidate files: {', '.join(sorted(missing))}")
    if limit is not None:
        files = files[:limit]
    return files, source


def collect_pages(files: Sequence[Path], min_words: int = MIN_WORDS) -> tuple[list[Page], dict]:
    """The kept pages (sorted by id, exact-duplicate texts dropped) and what was skipped."""
    skipped: dict[str, list[str]] = {reason: [] for reason in SKIP_REASONS}
    kept: dict[str, Page] = {}
    for path in files:
        result = read_page(path, min_words)
        if result.page is None:
            skipped[result.skipped].append(result.id)
            continue
        if result.id in kept:
            raise ManpagesError(f"page {result.id} exists twice ({path}): remove one of the copies")
        kept[result.id] = result.page
    pages, seen = [], {}
    for pid in sorted(kept):
        page = kept[pid]
        digest = hashlib.sha256(page.text.encode("utf-8")).hexdigest()
        if digest in seen:
            skipped["duplicate"].append(f"{pid} (same text as {seen[digest]})")
            continue
        seen[digest] = pid
        pages.append(page)
    return pages, {reason: sorted(ids) for reason, ids in skipped.items()}


# --------------------------------------------------------------------------- building


def _stats(values: Sequence[int]) -> dict:
    if not values:
        return {"min": 0, "median": 0, "mean": 0, "p90": 0, "max": 0, "total": 0}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "mean": round(statistics.fmean(ordered), 2),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
        "total": sum(ordered),
    }


def text_statistics(pages: Sequence[Page]) -> dict:
    """Word (whitespace) and token (``\\w+`` or one punctuation mark) counts of texts and summaries."""
    return {
        "text_words": _stats([len(p.text.split()) for p in pages]),
        "text_tokens": _stats([len(_TOKEN.findall(p.text)) for p in pages]),
        "summary_words": _stats([len(p.summary.split()) for p in pages]),
        "summary_tokens": _stats([len(_TOKEN.findall(p.summary)) for p in pages]),
        "tokens": "regex \\w+|[^\\w\\s] (words and single punctuation marks), not a model tokenizer",
    }


def renderer() -> str:
    """The groff that renders the pages, and how it is run."""
    try:
        return f"{roff.groff_version()}: groff {' '.join(roff.GROFF_ARGS)}, GROFF_NO_SGR=1"
    except GroffMissing as error:
        raise ManpagesUnavailable(str(error)) from error


def selection_rules(min_words: int, pages: Sequence[str] | None = None, limit: int | None = None) -> dict:
    """What decides the content of a set; a set built under other rules is never reused."""
    return {
        "format_version": FORMAT_VERSION,
        "files": "man*/ pages listed by dpkg -L; symlinks and pure .so aliases skipped; .so inside pages followed",
        "summary": "NAME section, the description after the dash",
        "text": "every other section, title line then body, rendered from roff by groff",
        "renderer": renderer(),
        "min_words": min_words,
        "duplicates": "exact duplicate texts dropped, the first id kept",
        "split": "int(sha1(id), 16) % 100: < 80 train, < 90 dev, else test",
        "pages": sorted(pages) if pages is not None else None,
        "limit": limit,
    }





def build_manpages(
    out_dir: str | os.PathLike,
    *,
    files: Sequence[str | os.PathLike] | None = None,
    pages: Sequence[str] | None = None,
    limit: int | None = None,
    min_words: int = MIN_WORDS,
    packages: Sequence[str] = PACKAGES,
) -> dict:
    """Build the set into ``out_dir`` and return its manifest.

    ``files``: the page files to read (default: the man pages ``dpkg -L`` lists for ``packages``).
    ``pages``: keep only these ids (``["open.2", "read.2"]``); ``limit``: only the first N candidate
    files in id order (aliases included). Both are for quick builds (tests, trials).
    """
    candidates, source = _candidate_files(files, pages, limit, packages)
    _log(f"rendering {len(candidates)} page files")
    kept, skipped = collect_pages(candidates, min_words)
    if not kept:
        raise ManpagesError(
            f"no pages left out of {len(candidates)} files: "
            + ", ".join(f"{len(ids)} {reason}" for reason, ids in skipped.items())
            + f". Is {INSTALL_HINT!r} done? Otherwise lower min_words."
        )
    splits = {split: [p for p in kept if p.split == split] for split in SPLITS}

    out_dir = Path(out_dir)
    checksums = write_split_files(out_dir, {split: [p.record() for p in members] for split, members in splits.items()},
                                  MANIFEST)
    sections = sorted({p.section for p in kept})
    manifest = {
        "source": source or {"packages": None, "how": "explicit files"},
        "rules": selection_rules(min_words, pages, limit),
        "files_read": len(candidates),
        "pages": len(kept),
        "counts": {split: len(members) for split, members in splits.items()},
        "section_counts": {s: {split: sum(p.section == s for p in splits[split]) for split in SPLITS} for s in sections},
        "skipped": {reason: len(ids) for reason, ids in skipped.items()},
        "skipped_ids": {reason: ids for reason, ids in skipped.items() if reason != "alias"},
        "statistics": text_statistics(kept),
        "median_words": statistics.median(p.words for p in kept),
        "sha256": checksums,
        "checksum": combined_checksum(checksums),
    }
    text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_atomic(out_dir / MANIFEST, text.encode("utf-8"))
    _log(f"{len(kept)} pages kept out of {len(candidates)} files; written to {out_dir}")
    return manifest


def load_manpages(out_dir: str | os.PathLike, split: str) -> list[dict]:
    """The records of one split of a built set (dicts with id, section, split, summary, text)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    path = Path(out_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ManpagesError(f"{path} does not exist: build the set first (python -m longdoc.datasets.manpages {out_dir})")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]



def default_out_dir() -> Path:
    root = os.environ.get("LONGDOC_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "longdoc") / "manpages" / "dataset"


def ensure_manpages(
    out_dir: str | os.PathLike | None = None,
    *,
    min_words: int = MIN_WORDS,
    limit: int | None = None,
    rebuild: bool = False,
) -> dict:
    """The manifest of the set in ``out_dir`` (default: ``$LONGDOC_CACHE/manpages/dataset``), built
    only when missing, changed on disk, built under other rules or other package versions, or ``rebuild``.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
    if not rebuild:
        try:
            manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
            checksums = manifest["sha256"]
            same = (
                manifest["rules"] == selection_rules(min_words, None, limit)
                and manifest["source"].get("packages") == package_versions()
                and set(checksums) == {f"{s}.jsonl" for s in SPLITS}
                and all(sha256_file(out_dir / name) == sha for name, sha in checksums.items())
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            same = False
        if same:
            _log(f"reusing the set in {out_dir} (checksums match)")
            return manifest
    return build_manpages(out_dir, limit=limit, min_words=min_words)


# --------------------------------------------------------------------------- command line


def summary(manifest: dict, out_dir: str | os.PathLike | None = None) -> str:
    packages = manifest["source"].get("packages") or {}
    version = ", ".join(f"{name} {v}" for name, v in packages.items()) or manifest["source"].get("how", "")
    stats = manifest["statistics"]
    lines = [
        f"man pages ({version}): {manifest['pages']} pages out of {manifest['files_read']} files "
        f"(skipped: " + ", ".join(f"{manifest['skipped'][r]} {r}" for r in SKIP_REASONS) + ")",
        "splits: " + ", ".join(f"{split} {manifest['counts'][split]}" for split in SPLITS),
        f"text: median {stats['text_words']['median']:g} words (max {stats['text_words']['max']}); "
        f"summary: median {stats['summary_words']['median']:g} words",
    ]
    if out_dir is not None:
        lines.append(f"files: {out_dir} (checksum {manifest['checksum']})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m longdoc.datasets.manpages",
        description="Build the man page summarization set (text = page body, summary = its NAME line).",
    )
    parser.add_argument("out", nargs="?", type=Path, metavar="OUT_DIR",
                        help="output folder (default: $LONGDOC_CACHE/manpages/dataset, else ~/.cache/longdoc/...)")
    parser.add_argument("--min-words", type=int, default=MIN_WORDS, metavar="N", help="shortest page text kept")
    parser.add_argument("--limit", type=int, metavar="N", help="read only the first N page files (trials)")
    parser.add_argument("--rebuild", action="store_true", help="build even if a matching set exists")
    args = parser.parse_args(argv)
    show_progress()
    out_dir = args.out if args.out is not None else default_out_dir()
    try:
        manifest = ensure_manpages(out_dir, min_words=args.min_words, limit=args.limit, rebuild=args.rebuild)
    except ManpagesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary(manifest, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
