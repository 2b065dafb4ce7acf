"""A real long-document classification set: Linux man pages, labelled by manual section.

    from longdoc.datasets.man_sections import ensure_man_sections
    data = ensure_man_sections()           # fetches manpages + manpages-dev once, builds once, then reuses
    train = data.read("train")             # [{"group", "id", "label", "text"}, ...]

    python -m longdoc.datasets.man_sections [--out DIR] [--min-words N] [--rebuild]

Source. The pages of the Debian packages ``manpages`` and ``manpages-dev`` (the Linux man-pages
project), downloaded with ``apt-get download`` into ``<cache>/man-sections`` and unpacked there (see
:mod:`longdoc.datasets.package_sets`), so the set does not depend on what is installed.

Documents: every page under ``usr/share/man/man<N>/`` (English only), gzipped or plain; symbolic
links and pages that only hold a ``.so`` include are aliases and skipped. id = ``man2/open.2``;
label = the section (``2 system calls``, ``3 library functions``, ``4 special files``, ``5 file
formats``, ``7 overviews``; 1 and 8 have too few long pages); text = the page rendered by
``groff -man -Tutf8`` (formatting characters dropped with ``-P-cbou``, lines of at most 78
columns, one continuous page: ``-rcR=1``, no hyphenation: ``-rHY=0``), the running header and
footer lines removed, the extra spaces of justified lines collapsed (indentation kept) and runs of
blank lines collapsed. The groff version is recorded in the manifest (another version may break
lines differently). Kept: pages of at least 500 words in sections of at least 10 such pages.
Near-duplicates, split and output: :mod:`longdoc.datasets.package_sets`.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .package_sets import LabelledDocument, PackageSet, PackageSetError, cache_root, ensure_set, fetch_packages

logger = logging.getLogger(__name__)

NAME = "man-sections"
PACKAGES = ("manpages", "manpages-dev")
MAN_IN_PACKAGE = Path("usr/share/man")
MIN_WORDS, MIN_CLASS_SIZE = 500, 10
SECTION_NAMES = {"1": "user commands", "2": "system calls", "3": "library functions", "4": "special files",
                 "5": "file formats", "6": "games", "7": "overviews", "8": "administration"}
GROFF = ("groff", "-man", "-Tutf8", "-P-cbou", "-rcR=1", "-rLL=78n", "-rHY=0")
RULES = {
    "format_version": 1,
    "documents": f"{MAN_IN_PACKAGE}/man<N>/* (symlinks and .so-only pages skipped)",
    "label": "the section: '<N> <name>'",
    "text": " ".join(GROFF) + "; header and footer lines removed, inner space runs and blank-line runs collapsed",
}


def groff_version() -> str:
    if shutil.which(GROFF[0]) is None:
        raise PackageSetError("groff is not installed: `apt-get install groff-base` (it renders the man pages)")
    return subprocess.run([GROFF[0], "--version"], capture_output=True, text=True).stdout.split("\n", 1)[0].strip()


def render_page(source: str, man_root: Path) -> str:
    """A man page's roff source as plain text (``.so`` includes are read relative to ``man_root``)."""
    result = subprocess.run(list(GROFF), input=source, capture_output=True, text=True, cwd=man_root,
                            env={**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "78"})
    if result.returncode != 0:
        raise PackageSetError(f"groff failed ({result.returncode}): {result.stderr.strip()[:300]}")
    lines = [_unjustified(line.rstrip()) for line in result.stdout.split("\n")]
    content = [i for i, line in enumerate(lines) if line]
    if len(content) > 2:
        lines = lines[content[0] + 1 : content[-1]]  # the running header and footer
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _unjustified(line: str) -> str:
    """A line without the extra spaces of justification (its indentation kept)."""
    body = line.lstrip(" ")
    return line[: len(line) - len(body)] + re.sub(r" {2,}", " ", body)


def _page_source(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", errors="replace")


def collect_documents(man_root: Path) -> list[LabelledDocument]:
    docs = []
    for path in sorted(man_root.glob("man*/*")):
        if path.is_symlink() or not path.is_file():
            continue
        source = _page_source(path)
        if re.fullmatch(r"(\.\\\".*\n|\s)*\.so\s+\S+\s*", source):
            continue  # an alias of another page
        section = path.parent.name.removeprefix("man")[:1]
        doc_id = f"{path.parent.name}/{path.name.removesuffix('.gz')}"
        docs.append(LabelledDocument(id=doc_id, label=f"{section} {SECTION_NAMES.get(section, 'other')}",
                                     text=render_page(source, man_root)))
    if not docs:
        raise PackageSetError(f"no man pages under {man_root}/man*/")
    return docs


def ensure_man_sections(out_dir: str | Path | None = None, min_words: int = MIN_WORDS,
                        min_class_size: int = MIN_CLASS_SIZE, rebuild: bool = False) -> PackageSet:
    """The set in ``out_dir`` (default ``<cache>/man-sections/dataset``), built when needed."""
    rules = {**RULES, "groff": groff_version()}

    def collect():
        root, packages = fetch_packages(PACKAGES, cache_root() / NAME)
        return collect_documents(root / MAN_IN_PACKAGE), {"packages": packages, "groff": rules["groff"]}

    return ensure_set(NAME, out_dir, rules, min_words, min_class_size, collect, rebuild)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m longdoc.datasets.man_sections", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="output folder (default: <cache>/man-sections/dataset)")
    parser.add_argument("--min-words", type=int, default=MIN_WORDS, metavar="N")
    parser.add_argument("--min-class-size", type=int, default=MIN_CLASS_SIZE, metavar="N")
    parser.add_argument("--rebuild", action="store_true", help="build even if a matching set exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[man_sections] %(message)s")
    try:
        data = ensure_man_sections(args.out, args.min_words, args.min_class_size, args.rebuild)
    except PackageSetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(data.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
