"""The roff reader (longdoc.data.roff): man pages rendered to text, on inline snippets."""

import pytest

from longdoc.data.roff import name_description, render_roff, so_target

SNIPPET = r""".\" Copyright line: a comment
.TH FOO 2 2024-01-01 "Linux man-pages 6.03"
.ds Ex example\(em\fIstring\fP
.de Qt
\\$2\(lq\\$1\(rq\\$3
..
.SH NAME
foo, foo-bar \- do the \fBfoo\fP thing
.SH SYNOPSIS
.nf
.B #include <foo.h>
.PP
.BI "int foo(int " fd ", const char *" path );
    indented \e line
.fi
.SH DESCRIPTION
The
.BR foo ()
call does
.IR "very little" ;
see
.BR bar (2). \" an inline comment
It is an \*(Ex and costs 10\ ms \- or less.
.PP
Joined\c
.B word
and a
.Qt quoted ( ).
.if n Shown on terminals.
.if t Shown on paper.
.ie n .ds Mode nroff
.el .ds Mode troff
Mode \*[Mode].
.TP
.B \-x
The x option.
.TQ
.B \-\-ex \c
.RI [ val ]
Same.
.IP \[bu] 2
A bullet
item.
.RS
Inside.
.RE
.sp
.in +4n
.EX
int x = 1;   /* code */
.EE
.in
.TS
tab(:);
l l.
Name:Value
T{
a long
cell
T}:1
.TE
.SS Sub title
.PP
Sub text.
.SH "SEE ALSO"
.BR open (2),
.UR https://example.org/foo
the foo site
.UE .
"""


def test_render_roff_strips_requests_and_escapes():
    page = render_roff(SNIPPET)
    assert (page.title, page.section) == ("FOO", "2")
    assert [name for name, _ in page.sections] == ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"]
    assert page.get("NAME") == "foo, foo-bar - do the foo thing"
    # no-fill: lines kept, alternating fonts joined without spaces, \e a backslash, .PP a blank line
    assert page.get("SYNOPSIS") == "#include <foo.h>\n\nint foo(int fd, const char *path);\n    indented \\ line"
    paragraphs = page.get("DESCRIPTION").split("\n\n")
    assert paragraphs[0] == (  # filled into one line; comments, fonts gone; \*(Ex a .ds string
        "The foo() call does very little; see bar(2). It is an example\u2014string and costs 10 ms - or less."
    )
    # \c glues; a .de macro with arguments; .if n true, .if t false; .ie/.el; \*[name]
    assert paragraphs[1] == "Joinedword and a (\u201cquoted\u201d). Shown on terminals. Mode nroff."
    assert paragraphs[2] == "-x\nThe x option.\n--ex [val]\nSame."  # .TP/.TQ tags on their own line
    assert paragraphs[3] == "\u2022 A bullet item.\nInside."  # .IP tag, .RS breaks the line
    assert paragraphs[4] == "int x = 1;   /* code */"  # .EX keeps spacing
    assert paragraphs[5] == "Name  Value\na long cell  1"  # tbl with tab(:) and a T{ T} block
    assert paragraphs[6] == "Sub title\nSub text."  # .SS kept with its paragraph
    assert page.get("SEE ALSO") == "open(2), the foo site <https://example.org/foo>."
    everything = "\n".join(text for _, text in page.sections)
    assert "\\f" not in everything and "\\-" not in everything and "\\(" not in everything
    assert not any(line.startswith(".") for line in everything.splitlines())


def test_body_keeps_section_titles_and_drops_name():
    page = render_roff(SNIPPET)
    body = page.body()
    assert body.startswith("SYNOPSIS\n#include <foo.h>\n")
    assert "\n\nDESCRIPTION\nThe foo() call" in body and "\n\nSEE ALSO\nopen(2)" in body
    assert "do the foo thing" not in body and "NAME" not in body


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


def test_name_line_rendered_from_roff():
    source = ".TH LD.SO 8\n.SH NAME\nld.so, ld\\-linux.so \\- dynamic\nlinker/loader\n.SH DESCRIPTION\nx\n"
    assert name_description(render_roff(source).get("NAME")) == "dynamic linker/loader"


def test_so_target():
    assert so_target('.\\" Link\n.so man2/ioctl_console.2\n') == "man2/ioctl_console.2"
    assert so_target(".so man7/string_copying.7\n") == "man7/string_copying.7"
    assert so_target(".TH X 2\n.so man2/a.2\n") is None  # content besides the .so: not an alias
