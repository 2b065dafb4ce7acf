"""A real long-document question-answering set: the Python FAQ, one question per FAQ heading.

    python -m longdoc.datasets.python_faq OUT_DIR [--cache DIR] [--faq DIR]

Source. The eight FAQ pages (``general``, ``programming``, ``design``, ``library``, ``extending``,
``windows``, ``gui``, ``installed``) of the HTML documentation in the Debian package
``python3.11-doc`` (``usr/share/doc/python3.11/html/faq/*.html``). ``apt-get download`` fetches the
.deb into a cache folder (``$LONGDOC_CACHE/python-faq``, else ``~/.cache/longdoc/python-faq``)
where it is unpacked; nothing is installed. The manifest records the package version and the
.deb's sha256.

Text of a page. The main body of the HTML page, its table of contents and the heading permalinks
(the pilcrows) left out, as blocks: headings, paragraphs, list items, definition terms and
descriptions, table cells, code blocks. A block's whitespace is collapsed to single spaces; a code
block keeps its lines (trailing spaces and blank lines dropped). So no block holds a blank line,
and the context is its blocks joined by blank lines: ``context_paragraphs`` cuts it back into them.

Records (one per FAQ question):

* question: a heading whose text ends in ``?``;
* answer: the first paragraph (``<p>``, not inside a list, table, quotation or note) under the
  question, before the next heading: the text exactly as it is in the context;
* context: the whole page without its question headings (other headings, e.g. the page title and
  section names, stay), so that the answer does not sit next to its question;
* dropped: an answer of fewer than ``MIN_ANSWER_WORDS`` (4) words (e.g. "See the FAQ."), one that
  occurs more than once in the context (its position would be ambiguous), a question whose
  section holds no paragraph before the next heading;
* id: ``<page>#<anchor of the question's section>``; every ``answer_start`` is checked against the
  context before anything is written.

Split (fixed, by whole pages: the questions of a page share its context, so a page in two splits
would show the test contexts, and their answers, in training): pages in decreasing order of kept
questions (ties by name) each go to the split furthest below its target share of questions (60 %
train, 20 % dev, 20 % test; ties test, dev, train). With python3.11-doc 3.11.2-6+deb12u8 that puts
programming, design and extending in train, general and windows in dev, library, gui and installed
in test (the manifest's ``pages`` says so for any build).

Output (byte-for-byte reproducible): ``train.jsonl``, ``dev.jsonl``, ``test.jsonl`` of
``{"answers": {"answer_start": [...], "text": [...]}, "context", "id", "page", "question", "title"}``
sorted by id (readable by :func:`longdoc.data.qa.read_qa`), and ``MANIFEST.json`` (source package,
version and .deb sha256, the rules, the counts per split and page, the sha256 of each file and
their combined checksum, as for the other sets).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from .dataset_files import combined_checksum, sha256_file, write_atomic, write_split_files
from .package_sets import PackageSetError, cache_root, fetch_packages

logger = logging.getLogger("longdoc.datasets.python_faq")  # not __name__: "__main__" under python -m

PACKAGE = "python3.11-doc"
FAQ_IN_PACKAGE = Path("usr/share/doc/python3.11/html/faq")
PAGES = ("general", "programming", "design", "library", "extending", "windows", "gui", "installed")
SPLITS = ("train", "dev", "test")
TARGET_SHARES = {"train": 0.6, "dev": 0.2, "test": 0.2}
MIN_ANSWER_WORDS = 4
MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 1
PARAGRAPH_BREAK = "\n\n"

RULES = {
    "format_version": FORMAT_VERSION,
    "pages": list(PAGES),
    "question": "a heading ending in '?'",
    "answer": "the first <p> under the question (not in a list, table, quotation or note), before the next heading",
    "context": "the page's blocks without question headings, joined by blank lines (no table of contents)",
    "min_answer_words": MIN_ANSWER_WORDS,
    "ambiguous_answers": "dropped (the answer text occurs more than once in the context)",
    "split": "whole pages, largest first, each to the split furthest below its share (train 0.6, dev 0.2, test 0.2)",
}

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = _HEADINGS | {"p", "pre", "li", "dt", "dd", "td", "th", "caption", "div", "section", "ul", "ol", "dl",
                       "table", "tr", "blockquote", "figure", "figcaption"}
_NESTING = {"li", "dd", "dt", "td", "th", "blockquote"}  # a <p> inside these is not a body paragraph
_VOID = {"br", "img", "hr", "input", "meta", "link", "wbr", "col", "source"}


class PythonFaqError(RuntimeError):
    """The set could not be built: no FAQ pages, or a page that yields no usable question."""


@dataclass(frozen=True)
class Block:
    kind: str  # the HTML element: "h3", "p", "pre", "li"...
    text: str
    section: str  # id of the innermost <section> holding it (a heading's anchor)
    body_paragraph: bool  # a <p> that is not inside a list, table, quotation or note


@dataclass(frozen=True)
class FaqRecord:
    id: str
    page: str
    title: str
    question: str
    context: str
    answer: str
    answer_start: int

    def as_json(self) -> dict:
        return {"answers": {"answer_start": [self.answer_start], "text": [self.answer]}, "context": self.context,
                "id": self.id, "page": self.page, "question": self.question, "title": self.title}


# --------------------------------------------------------------------------- HTML to blocks


class _PageParser(HTMLParser):
    """The blocks of a Sphinx page's main body (``<div class="body" role="main">``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._open: list[tuple[str, bool]] = []  # (tag, skipped) of every open element in the body
        self._body_depth: int | None = None  # len(self._open) when the body div opened
        self._sections: list[str] = []
        self._kinds: list[tuple[str, bool]] = []  # (block tag, nested) of the open blocks
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if self._body_depth is None:
            if tag == "div" and "body" in classes and attributes.get("role") == "main":
                self._body_depth = len(self._open)
                self._open.append((tag, False))
                self._kinds.append((tag, False))
            return
        skipped = self._skipping() or (tag == "nav" and "contents" in classes) or "headerlink" in classes \
            or tag in ("script", "style") or "admonition-title" in classes
        self._open.append((tag, skipped))
        if tag == "section":
            self._sections.append(attributes.get("id") or "")
        if tag in _BLOCKS and not skipped:
            self._flush()
            nested = tag in _NESTING or "admonition" in classes or any(n for _, n in self._kinds)
            self._kinds.append((tag, nested))

    def handle_endtag(self, tag: str) -> None:
        if self._body_depth is None or tag in _VOID:
            return
        while self._open:  # close up to the matching tag (tolerates unclosed inner elements)
            open_tag, skipped = self._open.pop()
            if open_tag in _BLOCKS and not skipped:
                self._flush()
                self._kinds.pop()
            if open_tag == "section":
                self._sections.pop()
            if open_tag == tag:
                break
        if len(self._open) <= self._body_depth:
            self._flush()
            self._body_depth = None  # the body is over; the rest of the page is navigation

    def handle_data(self, data: str) -> None:
        if self._body_depth is not None and not self._skipping():
            self._text.append(data)

    def _skipping(self) -> bool:
        return any(skipped for _, skipped in self._open)

    def _flush(self) -> None:
        raw, self._text = "".join(self._text), []
        kind, nested = self._kinds[-1] if self._kinds else ("div", False)
        if kind == "pre":
            lines = [line.rstrip() for line in raw.splitlines()]
            text = "\n".join(line for line in lines if line.strip())  # no blank line inside a block
        else:
            text = " ".join(raw.split())
        if text:
            section = self._sections[-1] if self._sections else ""
            self.blocks.append(Block(kind, text, section, kind == "p" and not nested))


def page_blocks(html: str) -> list[Block]:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.blocks


def context_paragraphs(context: str) -> list[tuple[int, int]]:
    """[start, end) character spans of a context's blocks (they are joined by blank lines)."""
    spans, start = [], 0
    for match in re.finditer(re.escape(PARAGRAPH_BREAK), context):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(context)))
    return spans


# --------------------------------------------------------------------------- blocks to records


def is_question(block: Block) -> bool:
    return block.kind in _HEADINGS and block.text.endswith("?")


def page_records(page: str, html: str) -> tuple[list[FaqRecord], dict[str, int]]:
    """The kept records of one page, and how many questions were dropped for which reason."""
    blocks = page_blocks(html)
    title = next((b.text for b in blocks if b.kind == "h1"), page)
    context = PARAGRAPH_BREAK.join(b.text for b in blocks if not is_question(b))
    starts, offset = [], 0  # where each block starts in the context (questions: where they would)
    for block in blocks:
        starts.append(offset)
        offset += 0 if is_question(block) else len(block.text) + len(PARAGRAPH_BREAK)
    records, dropped = [], {"no_paragraph": 0, "short": 0, "ambiguous": 0}
    for index, block in enumerate(blocks):
        if not is_question(block):
            continue
        answer = None
        for position in range(index + 1, len(blocks)):
            if blocks[position].kind in _HEADINGS:
                break
            if blocks[position].body_paragraph:
                answer, start = blocks[position], starts[position]
                break
        if answer is None:
            dropped["no_paragraph"] += 1
        elif len(answer.text.split()) < MIN_ANSWER_WORDS:
            dropped["short"] += 1
        elif context.count(answer.text) > 1:
            dropped["ambiguous"] += 1
        else:
            if context[start : start + len(answer.text)] != answer.text:  # the builder's own invariant
                raise PythonFaqError(f"{page}: answer of {block.text!r} not found at {start} in the context")
            records.append(FaqRecord(f"{page}#{block.section}", page, title, block.text, context, answer.text,
                                     start))
    return records, dropped


def assign_pages(counts: dict[str, int]) -> dict[str, str]:
    """page -> split, by the rule of the module docstring."""
    total = sum(counts.values())
    filled = {split: 0 for split in SPLITS}
    splits = {}
    for page in sorted(counts, key=lambda p: (-counts[p], p)):
        split = max(("test", "dev", "train"), key=lambda s: TARGET_SHARES[s] * total - filled[s])  # first wins ties
        splits[page] = split
        filled[split] += counts[page]
    return splits


# --------------------------------------------------------------------------- building


def find_faq(cache_dir: Path) -> tuple[Path, dict]:
    """The unpacked FAQ folder in the cache (downloading the package when needed) and its source."""
    root, fetched = fetch_packages([PACKAGE], cache_dir)
    faq = root / FAQ_IN_PACKAGE
    if not faq.is_dir():
        raise PythonFaqError(f"{PACKAGE} was unpacked into {root} but has no {FAQ_IN_PACKAGE}: the package layout "
                             f"changed; pass --faq DIR pointing at a folder of FAQ .html pages")
    return faq, {"packages": fetched, "faq_dir": str(FAQ_IN_PACKAGE)}


def build_python_faq(out_dir: str | os.PathLike, faq_dir: str | os.PathLike | None = None,
                     cache_dir: str | os.PathLike | None = None) -> dict:
    """Build the set into ``out_dir`` from ``faq_dir`` (a folder of ``<page>.html``), else from the
    package (fetched into ``cache_dir``); returns the manifest."""
    out_dir = Path(out_dir)
    if faq_dir is None:
        faq, source = find_faq(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    else:
        faq, source = Path(faq_dir), {"faq_dir": str(faq_dir)}
    missing = [page for page in PAGES if not (faq / f"{page}.html").is_file()]
    if len(missing) == len(PAGES):
        raise PythonFaqError(f"{faq} holds none of the FAQ pages ({', '.join(p + '.html' for p in PAGES)}); "
                             f"point --faq at the faq/ folder of the Python HTML documentation")
    records, dropped, questions = [], {}, {}
    for page in PAGES:
        if page in missing:
            logger.warning("%s: no %s.html, the page is left out", faq, page)
            continue
        kept, dropped[page] = page_records(page, (faq / f"{page}.html").read_text(encoding="utf-8"))
        questions[page] = len(kept) + sum(dropped[page].values())
        records += kept
    if not records:
        raise PythonFaqError(f"{faq}: no FAQ question with a usable answer paragraph")
    counts = {page: sum(r.page == page for r in records) for page in questions}
    pages = assign_pages({page: n for page, n in counts.items() if n})
    splits = {split: sorted((r for r in records if pages[r.page] == split), key=lambda r: r.id) for split in SPLITS}
    checksums = write_split_files(out_dir, {s: [r.as_json() for r in rs] for s, rs in splits.items()}, MANIFEST)
    contexts = {r.page: r.context for r in records}
    manifest = {
        "name": "python-faq",
        "source": source,
        "rules": RULES,
        "pages": pages,
        "questions": {"found": sum(questions.values()), "kept": len(records),
                      "dropped": {reason: sum(d[reason] for d in dropped.values()) for reason in
                                  ("no_paragraph", "short", "ambiguous")}},
        "counts": {split: len(rs) for split, rs in splits.items()},
        "page_counts": {page: {"kept": counts[page], "found": questions[page],
                               "context_words": len(contexts[page].split()) if page in contexts else 0}
                        for page in questions},
        "median_context_words": statistics.median(len(r.context.split()) for r in records),
        "sha256": checksums,
        "checksum": combined_checksum(checksums),
    }
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode())
    logger.info("python-faq: %d questions (%s) in %s", len(records),
                ", ".join(f"{s} {len(rs)}" for s, rs in splits.items()), out_dir)
    return manifest


def default_cache_dir() -> Path:
    return cache_root() / "python-faq"


def reusable(out_dir: Path) -> bool:
    """True when out_dir holds a set built under the current rules whose files match their checksums."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return manifest["rules"] == RULES and all(
            sha256_file(out_dir / name) == sha for name, sha in manifest["sha256"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_python_faq(out_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                      rebuild: bool = False) -> Path:
    """The folder of the built set (default ``<cache>/dataset``), built only when missing or changed."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out_dir = Path(out_dir) if out_dir is not None else cache_dir / "dataset"
    if rebuild or not reusable(out_dir):
        build_python_faq(out_dir, cache_dir=cache_dir)
    return out_dir


def summary(out_dir: Path) -> str:
    m = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    versions = ", ".join(f"{p['package']} {p['version']}" for p in m["source"].get("packages", []))
    by_split = {s: [p for p, split in m["pages"].items() if split == s] for s in SPLITS}
    dropped = ", ".join(f"{n} {reason}" for reason, n in m["questions"]["dropped"].items())
    return "\n".join([
        f"python-faq ({versions or m['source'].get('faq_dir')}): {m['questions']['kept']} of "
        f"{m['questions']['found']} questions kept (dropped: {dropped}), median context "
        f"{m['median_context_words']:g} words",
        "splits: " + "; ".join(f"{s} {m['counts'][s]} ({', '.join(by_split[s])})" for s in SPLITS),
        f"files: {out_dir} (checksum {m['checksum']})",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m longdoc.datasets.python_faq",
                                     description="Build the Python FAQ long-document question-answering set.")
    parser.add_argument("out_dir", type=Path, help="output folder")
    parser.add_argument("--cache", type=Path, help="download cache (default: $LONGDOC_CACHE/python-faq, else "
                                                   "~/.cache/longdoc/python-faq)")
    parser.add_argument("--faq", type=Path, help="a folder of FAQ .html pages to read instead of the package")
    args = parser.parse_args(argv)
    from ..logs import show_progress

    show_progress()
    try:
        build_python_faq(args.out_dir, args.faq, args.cache)
    except (PythonFaqError, PackageSetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
