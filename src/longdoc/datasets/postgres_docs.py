"""A real long-document classification set: the PostgreSQL 15 manual, one page per document,
labelled by the part of the manual it belongs to.

    from longdoc.datasets.postgres_docs import ensure_postgres_docs
    data = ensure_postgres_docs()          # fetches postgresql-doc-15 once, builds once, then reuses
    train = data.read("train")             # [{"group", "id", "label", "text"}, ...]

    python -m longdoc.datasets.postgres_docs [--out DIR] [--html DIR] [--min-words N] [--rebuild]

Source. The HTML manual in the Debian package ``postgresql-doc-15``
(``usr/share/doc/postgresql-doc-15/html/*.html``), downloaded with ``apt-get download`` into
``<cache>/postgres-docs`` and unpacked there (see :mod:`longdoc.datasets.package_sets`).

Documents: every HTML page; id = file name (``sql-createtable.html``); text = the page's content
without the navigation header and footer, one line per paragraph, list item, table row or
program line, whitespace inside a line collapsed; label = the title of the part the page is under,
found by following the pages' "Up" links (``The SQL Language``, ``Server Administration``,
``Client Interfaces``, ``Server Programming``, ``Reference``, ``Internals``, ``Appendixes``; the
``Tutorial`` has too few long pages). Kept: pages of at least 500 words in parts of at least 10
such pages. Near-duplicates, split and output: :mod:`longdoc.datasets.package_sets`.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

from .package_sets import LabelledDocument, PackageSet, PackageSetError, cache_root, ensure_set, fetch_packages

logger = logging.getLogger(__name__)

NAME = "postgres-docs"
PACKAGE = "postgresql-doc-15"
HTML_IN_PACKAGE = Path("usr/share/doc") / PACKAGE / "html"
MIN_WORDS, MIN_CLASS_SIZE = 500, 10
RULES = {
    "format_version": 1,
    "documents": f"{HTML_IN_PACKAGE}/*.html, navigation header and footer removed",
    "label": "title of the part above the page (Up links), without its number",
    "text": "one line per block element, whitespace inside a line collapsed",
}
_BLOCKS = {"p", "pre", "tr", "li", "dt", "dd", "div", "br", "table", "h1", "h2", "h3", "h4", "h5", "blockquote"}
_PART_TITLE = re.compile(r"^Part [IVXLC]+\.\s*")


class _Page(HTMLParser):
    """The title, the Up link and the content text of one page of the manual."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title, self.up = "", None
        self.pieces: list[str] = []
        self._in_title, self._navigation_depth = False, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("accesskey") == "u" and self.up is None:
            self.up = attrs.get("href")
        if tag == "div":
            if self._navigation_depth or attrs.get("class") in ("navheader", "navfooter"):
                self._navigation_depth += 1
        if tag == "title":
            self._in_title = True
        if tag in _BLOCKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag):
        if tag == "div" and self._navigation_depth:
            self._navigation_depth -= 1
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._navigation_depth:
            self.pieces.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.pieces).split("\n"))
        return "\n".join(line for line in lines if line)


def read_pages(html_dir: Path) -> dict[str, _Page]:
    pages = {}
    for path in sorted(html_dir.glob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        pages[path.name] = page
    return pages


def part_of(name: str, pages: dict[str, _Page]) -> str | None:
    """The title of the part above page ``name`` (itself included), without "Part N."; None above parts."""
    seen = set()
    while name in pages and name not in seen:
        seen.add(name)
        title = " ".join(pages[name].title.split())
        if _PART_TITLE.match(title):
            return _PART_TITLE.sub("", title)
        name = pages[name].up
    return None


def collect_documents(html_dir: Path) -> list[LabelledDocument]:
    pages = read_pages(html_dir)
    if not pages:
        raise PackageSetError(f"no .html pages in {html_dir}: point --html at the manual's html/ folder")
    docs = []
    for name, page in pages.items():
        label = part_of(name, pages)
        if label is not None:
            docs.append(LabelledDocument(id=name, label=label, text=page.text()))
    return docs


def ensure_postgres_docs(out_dir: str | Path | None = None, html_dir: str | Path | None = None,
                         min_words: int = MIN_WORDS, min_class_size: int = MIN_CLASS_SIZE,
                         rebuild: bool = False) -> PackageSet:
    """The set in ``out_dir`` (default ``<cache>/postgres-docs/dataset``), built when needed."""

    def collect():
        if html_dir is not None:
            return collect_documents(Path(html_dir)), {"packages": [{"package": PACKAGE, "version": None}],
                                                       "html": str(html_dir)}
        root, packages = fetch_packages([PACKAGE], cache_root() / NAME)
        return collect_documents(root / HTML_IN_PACKAGE), {"packages": packages}

    return ensure_set(NAME, out_dir, RULES, min_words, min_class_size, collect, rebuild)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m longdoc.datasets.postgres_docs", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="output folder (default: <cache>/postgres-docs/dataset)")
    parser.add_argument("--html", type=Path, help="an unpacked html/ folder of the manual (default: fetch the package)")
    parser.add_argument("--min-words", type=int, default=MIN_WORDS, metavar="N")
    parser.add_argument("--min-class-size", type=int, default=MIN_CLASS_SIZE, metavar="N")
    parser.add_argument("--rebuild", action="store_true", help="build even if a matching set exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[postgres_docs] %(message)s")
    try:
        data = ensure_postgres_docs(args.out, args.html, args.min_words, args.min_class_size, args.rebuild)
    except PackageSetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(data.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
