"""The groff wrapper (longdoc.datasets.roff): man pages rendered to plain, stable text by groff."""

from pathlib import Path

import pytest

from longdoc.datasets import roff
from longdoc.datasets.roff import name_description, render_roff, so_target

SNIPPET = r""".\" a comment
.TH FOO 2 2024-01-01 "Linux man-pages 6.03"
.SH NAME
foo, foo-bar \- do the \fBfoo\fP thing
.SH SYNOPSIS
.nf
.B #include <foo.h>
.PP
.BI "int foo(int " fd ", const char *" path );
.fi
.SH DESCRIPTION
The
.BR foo ()
call does
.IR "very little" ;
see
.BR bar (2).
A long paragraph follows so that a terminal would wrap it: internationalization
internationalization internationalization internationalization internationalization
internationalization internationalization internationalization internationalization end.
.TP
.B \-x
The x option.
.SS Sub title
Sub text.
.SH "SEE ALSO"
.BR open (2)
"""


@pytest.fixture(scope="module")
def page():
    return render_roff(SNIPPET)


def test_sections_titles_and_name_line(page):
    assert [name for name, _ in page.sections] == ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"]
    assert page.get("NAME") == "foo, foo-bar - do the foo thing"
    assert name_description(page.get("NAME")) == "do the foo thing"
    assert page.get("SYNOPSIS") == "#include <foo.h>\n\nint foo(int fd, const char *path);"
    assert page.get("SEE ALSO") == "open(2)"


def test_bold_italic_and_layout(page):
    everything = "\n".join(text for _, text in page.sections)
    assert not any(c in everything for c in "\b\x1b")  # no overstrike, no SGR escapes
    assert "\\f" not in everything and "\\-" not in everything
    paragraphs = page.get("DESCRIPTION").split("\n\n")
    # one line per filled paragraph: not wrapped, not hyphenated, not padded
    assert paragraphs[0].startswith("The foo() call does very little; see bar(2).  A long paragraph")
    assert "\n" not in paragraphs[0] and paragraphs[0].endswith("internationalization end.")
    assert "   " not in paragraphs[0]
    assert paragraphs[1] == "-x     The x option."  # a short .TP tag shares its line; "\-" is ASCII
    assert paragraphs[2] == "Sub title\nSub text."  # .SS heading, standard indentation removed


def test_body_keeps_section_titles_and_drops_name(page):
    body = page.body()
    assert body.startswith("SYNOPSIS\n#include <foo.h>\n")
    assert "\n\nDESCRIPTION\nThe foo() call" in body and body.endswith("\n\nSEE ALSO\nopen(2)")
    assert "do the foo thing" not in body and "NAME" not in body


def test_output_does_not_depend_on_the_terminal(monkeypatch, page):
    for name, value in (("MANWIDTH", "40"), ("COLUMNS", "40"), ("GROFF_SGR", "1"), ("LANG", "C")):
        monkeypatch.setenv(name, value)
    assert render_roff(SNIPPET) == page


def test_tables_are_terminal_wide():
    source = (".TH T 3\n.SH NAME\nt \\- t\n.SH ATTRIBUTES\n.TS\nallbox;\nlbx lb lb\nl l l.\n"
              "Interface\tAttribute\tValue\nfoo()\tThread safety\tMT-Safe\n.TE\n.SH NOTES\n"
              + "A paragraph after the table. " * 10 + "\n")
    page = render_roff(source)
    table = page.get("ATTRIBUTES").splitlines()
    assert len(table) == 5 and table[1].startswith("\u2502Interface") and "MT-Safe" in table[3]
    assert max(len(line) for line in table) <= 78  # the expanding column fills 78 columns, not the page
    assert "\n" not in page.get("NOTES")  # text after the table has the long line length again


def test_so_includes_are_inlined(tmp_path):
    import gzip

    (tmp_path / "man3").mkdir()
    (tmp_path / "man3" / "part.3.gz").write_bytes(gzip.compress(b"Included\n.B text\nfrom part.\n"))
    source = ".TH X 3\n.SH NAME\nx \\- y\n.SH NOTES\n.so man3/part.3\n.so man3/missing.3\n"
    page = render_roff(source, include_root=tmp_path)
    assert page.get("NOTES") == "Included text from part." and page.includes == ["man3/part.3"]
    assert render_roff(source).get("NOTES") == ""  # no include root: .so lines dropped


def test_missing_groff_names_the_package(monkeypatch):
    monkeypatch.setattr(roff.shutil, "which", lambda name: None)
    with pytest.raises(roff.GroffMissing, match="apt-get install groff-base"):
        render_roff(SNIPPET)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("open, openat, creat - open and possibly create a file", "open and possibly create a file"),
        ("ld.so, ld-linux.so - dynamic linker/loader", "dynamic linker/loader"),  # "-" inside a name
        ("foo \u2014 em-dash   separated\n  text", "em-dash separated text"),
        ("a - b - c", "b - c"),  # only the first dash separates
        ("nodash here", ""),
        ("name - ", ""),
    ],
)
def test_name_description(line, expected):
    assert name_description(line) == expected


def test_so_target():
    assert so_target('.\\" Link\n.so man2/ioctl_console.2\n') == "man2/ioctl_console.2"
    assert so_target(".so man7/string_copying.7\n") == "man7/string_copying.7"
    assert so_target(".TH X 2\n.so man2/a.2\n") is None  # content besides the .so: not an alias


REAL_PAGES = [Path("/usr/share/man/man2/open.2.gz"), Path("/usr/share/man/man7/signal.7.gz"),
              Path("/usr/share/man/man3/printf.3.gz")]


@pytest.mark.parametrize("path", REAL_PAGES, ids=lambda p: p.name)
def test_real_pages(path):
    if not path.is_file():
        pytest.skip(f"{path} is not installed (apt-get install manpages manpages-dev)")
    page = render_roff(roff.read_roff(path), include_root=path.parent.parent)
    titles = [name for name, _ in page.sections]
    assert titles[0] == "NAME" and {"DESCRIPTION", "SEE ALSO"} <= set(titles)
    assert name_description(page.get("NAME"))
    text = page.body()
    assert not any(c in text for c in "\b\x1b") and "\\f" not in text
    assert not any(line.startswith((".", "'\\")) for line in text.splitlines())
    assert not any(title.startswith("Linux man-pages") for title in titles)  # the footer (and header) dropped
    assert render_roff(roff.read_roff(path), include_root=path.parent.parent) == page  # stable
