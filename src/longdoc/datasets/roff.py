"""man(7) pages to plain text, by groff: a thin wrapper around ``groff -man -Tutf8``.

    from longdoc.datasets.roff import name_description, render_roff
    page = render_roff(source, include_root="/usr/share/man")   # RenderedPage
    page.get("NAME"), page.body(exclude=("NAME",))               # one section / the others, titled

groff (Debian package ``groff-base``, present on almost every Debian system as ``man``'s formatter)
reads the page; the settings below make its text depend on the page and groff's version only, not
on the terminal, the locale or the man configuration:

* a line length so large (``-rLL``) that a filled paragraph is one line, no hyphenation
  (``-rHY=0``, ``.nh``) and left adjustment (``.ad l``), so no word is split or padded; tables
  (tbl) are laid out 78 columns wide, as on a terminal;
* no bold / underline / colour: ``GROFF_NO_SGR=1`` and ``-P-cbou`` (grotty without SGR escapes,
  overstriking or underlining), so the text holds no control characters;
* ``-`` and ``\\-`` are ASCII hyphen-minus (``.char``), whatever the system's man.local says;
* tables through tbl (``-t``), UTF-8 input through preconv (``-Kutf8``);
* ``.so`` includes are inlined here first (groff cannot read the gzipped files they name).

The output is split into sections at the lines with no indentation (``.SH`` titles); the page
header and footer lines are dropped and the body's standard 7-column indentation removed (deeper
indentation, e.g. of ``.TP`` bodies and examples, is kept relative to it).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_INCLUDE_DEPTH = 8
GROFF_INSTALL_HINT = "apt-get install groff-base"
LINE_LENGTH = "20000n"  # longer than any paragraph of the man pages: one line per paragraph
TABLE_LENGTH = "78n"  # tables as on a terminal (an expanding column would fill LINE_LENGTH)
BODY_INDENT = 7  # columns of man(7)'s standard indentation of section bodies
# read right after the page's .TH (which loads the man macros and the system's man.local): no
# hyphenation, no adjustment, ASCII hyphens (some systems map "-" to U+2010), terminal-wide tables
PROLOGUE = (".nh\n.ad l\n.char \\- \\N'45'\n.char \\[hy] \\N'45'\n"
            f".am TS\n.ll {TABLE_LENGTH}\n..\n.am TE\n.ll {LINE_LENGTH}\n..\n")
_TH = re.compile(r"^[.']\s*TH\b.*$", re.MULTILINE)
GROFF_ARGS = ("-t", "-Kutf8", "-man", "-Tutf8", f"-rLL={LINE_LENGTH}", "-rHY=0", "-P-cbou")

_DASH = re.compile(r"\s+(?:-|\u2013|\u2014)+\s+")  # the NAME separator once rendered (\- is "-")
_SO = re.compile(r"^[.']\s*so\s+(\S+)\s*$")


class RoffError(RuntimeError):
    """A roff file could not be read (a ``.gz`` file that is not valid gzip) or groff failed."""


class GroffMissing(RoffError):
    """groff is not installed."""


# --------------------------------------------------------------------------- files and .so includes


def read_roff(path: str | os.PathLike) -> str:
    """The roff source of a file, gunzipped when it ends in .gz, decoded as UTF-8."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise RoffError(f"{path} is not a valid gzip file ({error})") from error
    return data.decode("utf-8", errors="replace")


def so_target(source: str) -> str | None:
    """``man2/ioctl_console.2`` for a page that is only a ``.so`` alias, else None."""
    target = None
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped in {".", "'"} or re.match(r"^['.]\s*\\\"", stripped):
            continue
        match = _SO.match(stripped)
        if match and target is None:
            target = match.group(1)
            continue
        return None
    return target


def resolve_include(name: str, man_root: Path) -> Path | None:
    """The file a ``.so name`` means: relative to the man root, gzipped or not."""
    for candidate in (man_root / name, man_root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def inline_includes(source: str, include_root: Path | None, read: Callable[[Path], str] = read_roff,
                    depth: int = 0) -> tuple[str, list[str]]:
    """`source` with each ``.so name`` line replaced by the named file (recursively, at most
    MAX_INCLUDE_DEPTH deep), and the names followed; without `include_root` the lines are dropped."""
    lines, followed = [], []
    for line in source.splitlines():
        match = _SO.match(line.strip())
        if match is None:
            lines.append(line)
            continue
        name = match.group(1)
        path = resolve_include(name, include_root) if include_root is not None else None
        if path is None or depth >= MAX_INCLUDE_DEPTH:
            if include_root is not None:
                logger.warning(f".so {name}: no such file under {include_root} (or nested too deep); skipped")
            continue
        text, nested = inline_includes(read(path), include_root, read, depth + 1)
        lines.append(text)
        followed += [name, *nested]
    return "\n".join(lines), followed


# --------------------------------------------------------------------------- groff


def groff_path() -> str:
    path = shutil.which("groff")
    if path is None:
        raise GroffMissing(f"groff is not installed; the man pages are rendered with it: `{GROFF_INSTALL_HINT}`")
    return path


@lru_cache(maxsize=None)
def groff_version() -> str:
    """``GNU groff version 1.22.4``: recorded with every set rendered by it."""
    result = subprocess.run([groff_path(), "--version"], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()[0].strip()


def run_groff(source: str) -> str:
    """The text groff renders from man(7) `source` with the fixed settings of this module."""
    th = _TH.search(source)
    at = th.end() + 1 if th else 0
    source = f"{source[:at]}{PROLOGUE}{source[at:]}" if th else PROLOGUE + source
    result = subprocess.run([groff_path(), *GROFF_ARGS], input=source.encode("utf-8"),
                            capture_output=True, env={**os.environ, "GROFF_NO_SGR": "1"})
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace")[-500:]
        raise RoffError(f"groff failed (exit status {result.returncode}): {message}")
    return result.stdout.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- the rendered page


@dataclass
class RenderedPage:
    """A page as text: its sections in order (title, body)."""

    sections: list[tuple[str, str]] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)  # .so files followed

    def get(self, title: str) -> str | None:
        for name, text in self.sections:
            if name.upper() == title.upper():
                return text
        return None

    def body(self, exclude: Sequence[str] = ("NAME",)) -> str:
        """The sections not in ``exclude``, each as its title line and its text."""
        skip = {name.upper() for name in exclude}
        return "\n\n".join(f"{name}\n{text}" if text else name for name, text in self.sections
                           if name.upper() not in skip)


def split_sections(text: str) -> list[tuple[str, str]]:
    """groff's output as (title, body): titles are the unindented lines; the header (first line)
    and footer (last line) are dropped, bodies lose the standard indentation and extra blank lines."""
    lines = [line.rstrip() for line in text.splitlines()]
    content = [i for i, line in enumerate(lines) if line]
    if len(content) < 2:
        return []
    lines = lines[content[0] + 1:content[-1]]  # between the header and the footer
    sections: list[tuple[str, list[str]]] = []
    for line in lines:
        if line and not line[0].isspace():
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line[BODY_INDENT:] if line.startswith(" " * BODY_INDENT) else line.lstrip())
    return [(title, re.sub(r"\n{3,}", "\n\n", "\n".join(body)).strip("\n")) for title, body in sections]


def render_roff(source: str, include_root: str | os.PathLike | None = None,
                read: Callable[[Path], str] = read_roff) -> RenderedPage:
    """Render man(7) roff `source` to text with groff, section by section (see the module docstring).

    ``include_root`` is the folder that ``.so man2/page.2`` is relative to (``/usr/share/man``);
    without it ``.so`` lines are dropped. ``read`` reads an included file (default :func:`read_roff`).
    """
    root = Path(include_root) if include_root is not None else None
    source, includes = inline_includes(source, root, read)
    return RenderedPage(split_sections(run_groff(source)), includes)


def name_description(name_text: str) -> str:
    """``"open, openat, creat - open and possibly create a file"`` -> the part after the dash."""
    flat = " ".join(name_text.split())
    parts = _DASH.split(flat, maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""
