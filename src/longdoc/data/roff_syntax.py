"""roff at the level of lines and characters: the lexical half of :mod:`longdoc.data.roff`.

    split_args('"int foo(int " fd ); x')                 # -> ['int foo(int ', 'fd', ');', 'x']
    expand_escapes(r"\\fBfoo\\fP \\- do\\(em\\*(Ex", {"Ex": "it"})  # -> ('foo - do\u2014it', False)

Lines: ``\\"`` and ``\\#`` start a comment, a trailing backslash continues the line, request
arguments are blank-separated with ``"..."`` quoting. Escapes: fonts, sizes and motions (``\\f \\s
\\h \\v``...) and zero-width ones (``\\& \\% \\:``...) are dropped; special characters (``\\-
\\(em \\[bu] \\[u00E9] \\N'65' \\e \\(aq``...) become their characters; ``\\*x \\*(xx
\\*[name]`` are ``.ds`` strings, expanded in turn; ``\\$1 \\$*`` are macro arguments. A ``\\c``
at the end of a text is reported so that the renderer can join the next text to it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

MAX_MACRO_DEPTH = 20  # nested \* string expansions


# --------------------------------------------------------------------------- lines and arguments


def split_args(line: str) -> list[str]:
    """Arguments of a request or macro call: blank-separated, ``"..."`` quoting, ``""`` a quote."""
    args, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        buf = []
        if line[i] == '"':
            i += 1
            while i < n:
                if line[i] == "\\" and i + 1 < n:
                    buf.append(line[i : i + 2])
                    i += 2
                elif line[i] == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        buf.append('"')
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    buf.append(line[i])
                    i += 1
        else:
            while i < n and line[i] not in " \t":
                if line[i] == "\\" and i + 1 < n:
                    buf.append(line[i : i + 2])
                    i += 2
                else:
                    buf.append(line[i])
                    i += 1
        args.append("".join(buf))
    return args


def strip_comment(line: str) -> str:
    """The line up to an unescaped ``\\"`` or ``\\#`` comment."""
    i = 0
    while True:
        i = line.find("\\", i)
        if i < 0 or i + 1 >= len(line):
            return line
        if line[i + 1] in '"#':
            return line[:i]
        i += 2


def join_continuations(lines: Iterable[str]) -> list[str]:
    """Join lines that end with an escaped newline (an odd number of trailing backslashes)."""
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = strip_comment(raw) if not re.match(r"^['.]\s*\\\"", raw) else raw
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1 and not re.match(r"^['.]\s*\\\"", raw):
            pending += line[:-1]
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


# --------------------------------------------------------------------------- characters and escapes


SPECIAL_CHARS = {
    "em": "\u2014", "en": "\u2013", "hy": "-", "mi": "-", "aq": "'", "dq": '"', "lq": "\u201c",
    "rq": "\u201d", "oq": "\u2018", "cq": "\u2019", "bu": "\u2022", "ha": "^", "ti": "~", "ga": "`", "aa": "\u00b4",
    "a^": "^", "rs": "\\", "sl": "/", "lB": "[", "rB": "]", "lC": "{", "rC": "}", "la": "\u27e8", "ra": "\u27e9",
    "ul": "_", "ru": "_", "bv": "|", "or": "|", "ba": "|", "br": "\u2502", "dg": "\u2020", "dd": "\u2021",
    "+-": "\u00b1", "de": "\u00b0", "fm": "\u2032", "sd": "\u2033", "sc": "\u00a7", "ps": "\u00b6", "mc": "\u00b5",
    "co": "\u00a9", "rg": "\u00ae", "tm": "\u2122", "12": "\u00bd", "14": "\u00bc", "34": "\u00be",
    "mu": "\u00d7", "di": "\u00f7", "<=": "\u2264", ">=": "\u2265", "!=": "\u2260", "==": "\u2261",
    "ap": "~", "->": "\u2192", "<-": "\u2190", "if": "\u221e", "pc": "\u00b7", "ct": "\u00a2",
    "Po": "\u00a3", "Eu": "\u20ac", "eu": "\u20ac", "Ye": "\u00a5", "Fo": "\u00ab", "Fc": "\u00bb",
    "fo": "\u2039", "fc": "\u203a", "ss": "\u00df", "ae": "\u00e6", "AE": "\u00c6", "o/": "\u00f8",
    "O/": "\u00d8", "an": "-", "sq": "\u25a1", "ci": "\u25cb", "lh": "\u261c", "rh": "\u261e",
    "*a": "\u03b1", "*b": "\u03b2", "*g": "\u03b3", "*d": "\u03b4", "*e": "\u03b5", "*l": "\u03bb",
    "*m": "\u03bc", "*p": "\u03c0", "*s": "\u03c3", "*t": "\u03c4", "*W": "\u03a9", "*S": "\u03a3",
}
_ACCENTS = {":": "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", ",": "\u0327",
            "o": "\u030a", "v": "\u030c"}
DEFAULT_STRINGS = {"lq": "\u201c", "rq": "\u201d", "R": "\u00ae", "Tm": "\u2122", "S": "", "HF": "", "HS": ""}


def special_char(name: str) -> str:
    """The character ``\\(name`` / ``\\[name]`` stands for (``em``, ``u00E9``, ``char65``, ``'e``), else ""."""
    if name in SPECIAL_CHARS:
        return SPECIAL_CHARS[name]
    if name.startswith("u") and re.fullmatch(r"u[0-9A-Fa-f]{4,6}(_[0-9A-Fa-f]{4,6})*", name):
        return unicodedata.normalize("NFC", "".join(chr(int(part.lstrip("u"), 16)) for part in name.split("_")))
    if name.startswith("char") and name[4:].isdigit():
        return chr(int(name[4:]))
    if len(name) == 2 and name[0] in _ACCENTS and name[1].isalpha():
        return unicodedata.normalize("NFC", name[1] + _ACCENTS[name[0]])
    return ""


def expand_escapes(
    s: str, strings: Mapping[str, str], args: Sequence[str] = (), depth: int = 0
) -> tuple[str, bool]:
    """``s`` with its escapes interpreted, and whether a ``\\c`` ends it (or a string it expands).

    ``strings``: the ``.ds`` strings by name; ``args``: the arguments ``\\$1``... stand for.
    """
    out: list[str] = []
    glue = False
    i, n = 0, len(s)

    def name_at(pos: int) -> tuple[str, int]:  # x, (xx or [name]
        if pos >= n:
            return "", pos
        if s[pos] == "(":
            return s[pos + 1 : pos + 3], pos + 3
        if s[pos] == "[":
            end = s.find("]", pos)
            end = n if end < 0 else end
            return s[pos + 1 : end], end + 1
        return s[pos], pos + 1

    def delimited(pos: int) -> tuple[str, int]:  # 'xxx' (any delimiter)
        if pos >= n:
            return "", pos
        end = s.find(s[pos], pos + 1)
        end = n if end < 0 else end
        return s[pos + 1 : end], end + 1

    while i < n:
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            break
        e, i = s[i + 1], i + 2
        if e in '"#':
            break
        if e in "\\eE":
            out.append("\\")
        elif e == "(" or e == "[":
            name, i = name_at(i - 1)
            out.append(special_char(name))
        elif e == "*":
            name, i = name_at(i)
            if depth < MAX_MACRO_DEPTH:
                text, inner_glue = expand_escapes(strings.get(name, ""), strings, args, depth + 1)
                out.append(text)
                glue = glue or inner_glue
        elif e in "fFgkmM":
            _, i = name_at(i)
        elif e == "n":
            if i < n and s[i] in "+-":
                i += 1
            _, i = name_at(i)
        elif e == "s":
            if i < n and s[i] in "+-":
                i += 1
            if i < n and s[i] in "(['":
                if s[i] == "'":
                    _, i = delimited(i)
                else:
                    _, i = name_at(i)
            elif i < n and s[i].isdigit():
                i += 2 if s[i] in "123" and i + 1 < n and s[i + 1].isdigit() else 1
        elif e == "N":
            number, i = delimited(i)
            if number.strip().isdigit():
                out.append(chr(int(number)))
        elif e in "whvobDlLXZxABRSTVCY":
            _, i = delimited(i)
        elif e == "$":
            name, i = name_at(i)
            if name in {"*", "@"}:
                out.append(" ".join(args))
            elif name.isdigit() and 0 < int(name) <= len(args):
                out.append(args[int(name) - 1])
        elif e == "c":
            if not s[i:].strip():
                glue = True
        elif e in " ~0":
            out.append(" ")
        elif e == "t":
            out.append("\t")
        elif e in "-.'`":
            out.append("-" if e == "-" else e)
        elif e in "&%:|^/,){}adupr!?z":
            pass  # zero-width, motions, line control; \z's character follows and is kept
        else:
            out.append(e)
    return "".join(out), glue
