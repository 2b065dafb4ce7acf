"""man(7) roff source to plain text: a small roff/man-macro reader.

    from longdoc.data.roff import name_description, render_roff
    page = render_roff(source, include_root="/usr/share/man")   # RenderedPage
    page.get("NAME"), page.body(exclude=("NAME",))               # one section / the others, titled

Written here rather than running ``man``, so the text depends neither on its version nor on the
locale or the terminal width. Requests and macros (``.TH .SH .SS .B .BR .I .IR .PP .TP .IP .nf .fi
.EX .EE .in .RS .RE .sp .br .UR .UE`` ...) become paragraphs, tagged lines and no-fill blocks;
escapes become text as in :mod:`longdoc.data.roff_syntax` (fonts and spacing dropped, special
characters kept); ``.ds`` strings, ``.de`` macros and simple ``.if/.ie/.el`` conditions (nroff is
true, troff false) are honoured; ``.so`` includes are read from ``include_root``; tbl tables
(``.TS``/``.TE``) become one line per row with cells separated by two spaces. Anything else
(``.ad .na .hy .ft .ta .ne .nr .ll .ce`` ...) is formatting and ignored.

Layout: filled text becomes one line per paragraph (no hard wrapping), paragraphs are separated by
a blank line, no-fill blocks (synopses, examples) keep their lines, ``.TP`` tags sit on their own
line, and an ``.SS`` heading stays with the paragraph that follows it.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from longdoc.data.roff_syntax import DEFAULT_STRINGS, expand_escapes, join_continuations, split_args, strip_comment

MAX_INCLUDE_DEPTH = 8

_DASH = re.compile(r"\s+(?:-|\u2013|\u2014)+\s+")  # the NAME separator once rendered (\- is "-")

# requests that end the current line (a break) / the current paragraph; everything not handled
# anywhere below (.ad .na .hy .nh .PD .ft .ta .ne .nr .UC .ll .ce .cs ...) is formatting and ignored
_BREAKS = {"br", "in", "ti", "RS", "RE", "INDENT", "UNINDENT"}
_PARAGRAPHS = {"PP", "P", "LP", "sp", "bp", "HP", "YS", "SY"}
_FONT_JOIN = {"B", "I", "SM", "SB"}  # arguments joined by spaces
_FONT_ALTERNATE = {"BR", "RB", "BI", "IB", "IR", "RI"}  # arguments joined without spaces


class RoffError(RuntimeError):
    """A roff file could not be read (a ``.gz`` file that is not valid gzip)."""


def _log(message: str) -> None:
    print(f"[roff] {message}", file=sys.stderr, flush=True)


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
        match = re.match(r"^[.']\s*so\s+(\S+)", stripped)
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


# --------------------------------------------------------------------------- the renderer


@dataclass
class RenderedPage:
    """A page as text: its ``.TH`` title and section, and its sections in order."""

    title: str = ""
    section: str = ""
    preamble: str = ""  # text before the first .SH (normally none)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, text)
    includes: list[str] = field(default_factory=list)  # .so files followed

    def get(self, title: str) -> str | None:
        for name, text in self.sections:
            if name.upper() == title.upper():
                return text
        return None

    def body(self, exclude: Sequence[str] = ("NAME",)) -> str:
        """The sections not in ``exclude``, each as its title line and its text."""
        skip = {name.upper() for name in exclude}
        parts = [self.preamble] if self.preamble else []
        parts += [f"{name}\n{text}" if text else name for name, text in self.sections if name.upper() not in skip]
        return "\n\n".join(parts)


class _Renderer:
    def __init__(self, include_root: Path | None, read: Callable[[Path], str] = read_roff, depth: int = 0):
        self.include_root = include_root
        self.read = read
        self.depth = depth
        self.strings = dict(DEFAULT_STRINGS)
        self.macros: dict[str, list[str]] = {}
        self.page = RenderedPage()
        self.blocks: list[str] = []  # finished paragraphs of the current section
        self.lines: list[str] = []  # finished lines of the current paragraph
        self.cur = ""  # line being filled
        self.heading_only = False  # the current paragraph holds only a heading line so far
        self.nofill = False
        self.glue = False  # the previous text ended in \c: this one continues its word
        self.glue_next = False  # the text being expanded ends in \c
        self.expansions = 0
        self.pending: str | None = None  # what the next text line is: "tag", "SH", "SS" or "font"
        self.section_title: str | None = None
        self.url: list[str] = []
        self.last_condition = True

    # ---- output
    def _text(self, text: str, *, raw_spacing: bool = False) -> None:
        if self.pending in {"SH", "SS"}:
            self.pending, kind = None, self.pending
            self._heading(kind, text)
            return
        if self.pending == "tag":  # a .TP/.TQ tag: a line of its own (\c continues it)
            piece = re.sub(r"[ \t]+", " ", text)
            if self.glue:
                self.cur += piece
            else:
                self._break()
                self.cur = piece.lstrip()
            self.glue, self.glue_next = self.glue_next, False
            if not self.glue:
                self.pending = None
                self._break()
            return
        self.pending = None
        glue, self.glue, self.glue_next = self.glue, self.glue_next, False
        if self.nofill:  # lines kept as they are (trailing blanks go in _paragraph)
            if glue and self.lines:
                self.lines[-1] += text
            else:
                self.lines.append(text)
            self.heading_only = False
            return
        if not raw_spacing and text[:1] in " \t":  # leading blanks break the line in fill mode
            self._break()
        words = re.sub(r"[ \t]+", " ", text)
        if glue:  # \c: continue the word (or the space) where the previous text stopped
            self.cur += words
        else:
            words = words.lstrip()
            if not words.strip():
                return
            self.cur = f"{self.cur.rstrip()} {words}" if self.cur.strip() else words
        self.heading_only = False

    def _break(self) -> None:
        if self.cur.strip():
            self.lines.append(self.cur.rstrip())
            if self.heading_only and len(self.lines) > 1:
                self.heading_only = False
        self.cur = ""

    def _paragraph(self) -> None:
        self._break()
        if self.heading_only:  # keep a heading with the paragraph that follows it
            return
        self.lines = [line.rstrip() for line in self.lines]
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        if self.lines:
            self.blocks.append("\n".join(self.lines))
        self.lines = []

    def _heading(self, kind: str, title: str) -> None:
        title = " ".join(title.split())
        if kind == "SH":
            self._end_section()
            self.section_title = title
        else:
            self.heading_only = False
            self._paragraph()
            self.lines = [title]
            self.heading_only = True

    def _end_section(self) -> None:
        self.heading_only = False
        self._paragraph()
        text = "\n\n".join(self.blocks).strip("\n")
        if self.section_title is None:
            self.page.preamble = text
        else:
            self.page.sections.append((self.section_title, text))
        self.blocks = []

    # ---- escapes
    def expand(self, s: str) -> str:
        """``s`` with its escapes interpreted (:func:`expand_escapes`); a final ``\\c`` glues the next text."""
        text, glue = expand_escapes(s, self.strings)
        if glue:
            self.glue_next = True
        return text

    def render(self, source: str) -> RenderedPage:
        self.queue = deque(join_continuations(source.splitlines()))
        while self.queue:
            self.line(self.queue.popleft())
        if self.pending in {"SH", "SS"}:
            self.pending = None
        self._end_section()
        self.page.sections = [(t, x) for t, x in self.page.sections if t or x]
        return self.page

    def line(self, line: str) -> None:
        if line[:1] in {".", "'"}:
            self.request(line[1:])
        elif not line.strip():
            self._paragraph()
        else:
            self._text(self.expand(line))

    def _collect_until(self, end: str) -> list[str]:
        body = []
        while self.queue:
            line = self.queue.popleft()
            if re.match(r"^[.']\s*" + re.escape(end) + r"\s*$", line.rstrip()):
                break
            body.append(line)
        return body

    def _condition(self, rest: str) -> tuple[bool, str]:
        """Evaluate the condition of ``.if``/``.ie`` (nroff, groff); return (value, the rest)."""
        rest = rest.lstrip()
        negate = rest.startswith("!")
        if negate:
            rest = rest[1:]
        if rest[:1] in {"n", "t", "e", "o"} and (len(rest) == 1 or not rest[1].isalnum()):
            value, rest = rest[0] in {"n", "o"}, rest[1:]
        elif rest.startswith("\\n(.g") or rest.startswith("\\n[.g]"):
            value, rest = True, rest[5:] if rest.startswith("\\n(.g") else rest[6:]
        elif rest[:1] in {"c", "d", "r", "m", "F", "S"} and len(rest) > 1 and rest[1] == " ":
            parts = rest[2:].lstrip().split(None, 1)  # c CHAR / d NAME ...: true when known
            name = parts[0] if parts else ""
            value = rest[0] == "c" or (rest[0] == "d" and name in self.strings) or (rest[0] == "m")
            rest = parts[1] if len(parts) > 1 else ""
        elif rest[:1] in {"'", '"', "/"}:  # 'a'b': string comparison
            delim = rest[0]
            parts = rest[1:].split(delim, 2)
            if len(parts) == 3:
                value = self.expand(parts[0]) == self.expand(parts[1])
                rest = parts[2]
            else:
                value, rest = False, ""
        else:  # a numeric expression: treat as false
            match = re.match(r"^\S+", rest)
            value, rest = False, rest[match.end() :] if match else ""
        return value != negate, rest.lstrip()

    def _branch(self, value: bool, body: str) -> None:
        body = body.lstrip()
        if body.startswith("\\{"):
            lines, depth, text = [], 0, body
            while True:
                depth += text.count("\\{") - text.count("\\}")
                lines.append(text)
                if depth <= 0 or not self.queue:
                    break
                text = self.queue.popleft()
            if value:
                cleaned = [re.sub(r"\\[{}]", "", line) for line in lines]
                self.queue.extendleft(reversed([line for line in cleaned if line.strip()]))
        elif value and body:
            self.queue.appendleft(body)

    def request(self, rest: str) -> None:
        match = re.match(r"^\s*(\S*)\s*(.*)$", rest)
        name, argline = (match.group(1), match.group(2)) if match else ("", "")
        if not name or name.startswith('\\"'):
            return
        if name in {"de", "de1", "am", "am1", "ig"}:
            args = split_args(argline)
            end = args[1] if len(args) > 1 else "."
            body = self._collect_until("." if end == "." else end)
            if name != "ig" and args:
                self.macros[args[0]] = body if name.startswith("de") else self.macros.get(args[0], []) + body
            return
        if name in {"ds", "ds1", "as", "as1"}:
            parts = argline.split(None, 1)
            if parts:
                value = parts[1] if len(parts) > 1 else ""
                value = value[1:] if value.startswith('"') else value
                value = strip_comment(value)
                self.strings[parts[0]] = (self.strings.get(parts[0], "") if name.startswith("as") else "") + value
            return
        if name in {"if", "ie"}:
            value, body = self._condition(argline)
            if name == "ie":
                self.last_condition = value
            self._branch(value, body)
            return
        if name == "el":
            self._branch(not self.last_condition, argline)
            return
        if name in self.macros:
            args = split_args(argline)
            self.expansions += 1
            if self.expansions > 10000:  # a runaway (recursive) macro
                return
            body = [line.replace("\\\\", "\\") for line in self.macros[name]]
            body = [re.sub(r"\\\$(\d)", lambda m: _arg(args, int(m.group(1))), line) for line in body]
            body = [line.replace("\\$*", " ".join(args)).replace("\\$@", " ".join(args)) for line in body]
            self.queue.extendleft(reversed(body))
            return
        if name == "so":
            self._include(argline.strip())
            return
        if name == "TS":
            self._table(self._collect_until("TE"))
            return
        args = split_args(argline)
        if name == "TH":
            self.page.title = self.expand(args[0]) if args else ""
            self.page.section = self.expand(args[1]) if len(args) > 1 else ""
        elif name in {"SH", "SS"}:
            self.nofill = False
            if args:
                self._heading(name, " ".join(self.expand(a) for a in args))
            else:
                self._paragraph()
                self.pending = name
        elif name in _FONT_JOIN:
            if args:
                self._text(" ".join(self.expand(a) for a in args), raw_spacing=True)
            elif self.pending is None:
                self.pending = "font"
        elif name in _FONT_ALTERNATE:
            if args:
                self._text("".join(self.expand(a) for a in args), raw_spacing=True)
        elif name in {"TP", "TQ"}:
            if name == "TP":
                self._paragraph()
            else:
                self._break()
            self.pending = "tag"
        elif name == "IP":
            self._paragraph()
            tag = self.expand(args[0]).strip() if args else ""
            if tag:
                self.cur = tag
                self.heading_only = False
        elif name in _PARAGRAPHS:
            self._paragraph()
            if name == "SY" and args:
                self._text(" ".join(self.expand(a) for a in args))
        elif name == "OP":
            self._text("[" + " ".join(self.expand(a) for a in args) + "]")
        elif name in _BREAKS:
            self._break()
        elif name in {"nf", "EX"}:
            self._break()
            self.nofill = True
        elif name in {"fi", "EE"}:
            self._break()
            self.nofill = False
        elif name in {"UR", "MT"}:
            self.url.append(self.expand(args[0]) if args else "")
        elif name in {"UE", "ME"}:
            target = self.url.pop() if self.url else ""
            trail = "".join(self.expand(a) for a in args)
            if target:
                self._text(f"<{target}>{trail}")
            elif trail:
                self.glue = True
                self._text(trail)

    def _include(self, name: str) -> None:
        if self.include_root is None or self.depth >= MAX_INCLUDE_DEPTH:
            return
        path = resolve_include(name, self.include_root)
        if path is None:
            _log(f".so {name}: no such file under {self.include_root}; skipped")
            return
        self.page.includes.append(name)
        self.queue.extendleft(reversed(join_continuations(self.read(path).splitlines())))
        self.depth += 1

    def _table(self, lines: list[str]) -> None:
        """A tbl table: one line per row, cells separated by two spaces."""
        self._paragraph()
        lines = [line for line in lines if not re.match(r"^['.]\s*\\\"", line)]
        tab, i = "\t", 0
        if lines and lines[0].rstrip().endswith(";"):
            match = re.search(r"tab\s*\((.)\)", lines[0])
            tab = match.group(1) if match else tab
            i = 1
        while i < len(lines) and not lines[i].rstrip().endswith("."):  # format lines
            i += 1
        i += 1
        rows: list[list[str]] = []
        cells: list[str] = []
        block: list[str] | None = None

        def add_cells(text: str) -> None:
            nonlocal block, cells
            parts = text.split(tab)
            for k, part in enumerate(parts):
                if part.rstrip().endswith("T{") and k == len(parts) - 1:
                    block = []
                    return
                cells.append(" ".join(self.expand(part).split()))
            rows.append(cells)
            cells = []

        while i < len(lines):
            line = lines[i]
            i += 1
            if block is not None:
                if line.startswith("T}"):
                    cells.append(" ".join(" ".join(block).split()))
                    block = None
                    rest = line[2:]
                    if rest.startswith(tab):
                        add_cells(rest[1:])
                    else:
                        rows.append(cells)
                        cells = []
                elif line[:1] in {".", "'"}:
                    args = split_args(re.sub(r"^[.']\s*\S+", "", line))
                    macro = re.match(r"^[.']\s*(\S+)", line)
                    if macro and macro.group(1) in _FONT_JOIN:
                        block.append(" ".join(self.expand(a) for a in args))
                    elif macro and macro.group(1) in _FONT_ALTERNATE:
                        block.append("".join(self.expand(a) for a in args))
                else:
                    block.append(self.expand(line))
                continue
            if line.startswith(".T&"):
                while i < len(lines) and not lines[i].rstrip().endswith("."):
                    i += 1
                i += 1
                continue
            if line[:1] in {".", "'"} or line.strip() in {"_", "=", ""}:
                continue
            add_cells(line)
        if cells:
            rows.append(cells)
        text_rows = ["  ".join(c for c in row if c and c not in {"_", "="}) for row in rows]
        self.lines += [row for row in text_rows if row.strip()]
        self.heading_only = False
        self._paragraph()


def _arg(args: Sequence[str], k: int) -> str:
    return args[k - 1] if 0 < k <= len(args) else ""


def render_roff(
    source: str, include_root: str | os.PathLike | None = None, read: Callable[[Path], str] = read_roff
) -> RenderedPage:
    """Render man(7) roff source to plain text, section by section (see the module docstring).

    ``include_root`` is the folder that ``.so man2/page.2`` is relative to (``/usr/share/man``);
    without it ``.so`` lines are dropped. ``read`` reads an included file (default :func:`read_roff`).
    """
    root = Path(include_root) if include_root is not None else None
    return _Renderer(root, read).render(source)


def name_description(name_text: str) -> str:
    """``"open, openat, creat - open and possibly create a file"`` -> the part after the dash."""
    flat = " ".join(name_text.split())
    parts = _DASH.split(flat, maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""


