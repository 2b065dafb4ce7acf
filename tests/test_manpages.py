"""The man page summarization set (longdoc.datasets.manpages): the builder on fake man trees, and a few
real pages of the Debian packages when installed. The groff wrapper itself is in test_roff.py."""

import gzip
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from longdoc.datasets import manpages as mp
from longdoc.datasets import roff


def test_split_of_is_sha1_bucketed_and_stable():
    for page in ("open.2", "read.2", "size_t.3type", "ld.so.8"):
        bucket = int(hashlib.sha1(page.encode()).hexdigest(), 16) % 100
        assert mp.split_of(page) == ("train" if bucket < 80 else "dev" if bucket < 90 else "test")
    counts = Counter(mp.split_of(f"page{i}.3") for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.8) < 0.02
    assert abs(counts["dev"] / 20000 - 0.1) < 0.02 and abs(counts["test"] / 20000 - 0.1) < 0.02


def _page(name: str, description: str, words: int, extra: str = "") -> str:
    body = " ".join(f"{name}w{i}" for i in range(words))
    return (
        f'.\\" comment\n.TH {name.upper()} 2\n.SH NAME\n{name} \\- {description}\n'
        f".SH DESCRIPTION\nThe\n.B {name}\nfunction: {body}.\n{extra}"
    )


def _write(path: Path, text: str, gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path) -> list[Path]:
    """A fake man root: real pages, a .so alias, a symlink alias, an inline .so, a short page,
    a page without a NAME description, and a duplicate text."""
    root = tmp_path / "man"
    files = [
        _write(root / "man2" / "foo.2", _page("foo", "do a foo", 60)),
        _write(root / "man2" / "bar.2", '.\\" alias\n.so man2/foo.2\n'),
        _write(root / "man3" / "baz.3", _page("baz", "bazzes things", 80, ".SH NOTES\n.so man3/part.inc\n"), gz=False),
        _write(root / "man2" / "short.2", _page("short", "too short", 10)),
        _write(root / "man7" / "noname.7", _page("noname", "", 60).replace("noname \\- ", "noname ")),
        _write(root / "man2" / "zdup.2", _page("foo", "same body as foo", 60)),
    ]
    _write(root / "man3" / "part.inc", "Included\n.B text\nfrom part.\n", gz=False)  # not a page file
    link = root / "man2" / "foo_alias.2.gz"
    link.symlink_to("foo.2.gz")
    files.append(link)
    for i in range(30):
        files.append(_write(root / "man3" / f"fn{i:02d}.3", _page(f"fn{i:02d}", f"function number {i}", 55 + i)))
    return files


def _rows(out: Path) -> dict[str, dict]:
    return {row["id"]: row for split in mp.SPLITS for row in mp.load_manpages(out, split)}


def test_build_from_fake_tree_aliases_and_filters(tree, tmp_path):
    manifest = mp.build_manpages(tmp_path / "out", files=tree)
    rows = _rows(tmp_path / "out")
    assert set(rows) == {"foo.2", "baz.3"} | {f"fn{i:02d}.3" for i in range(30)}
    assert manifest["skipped"] == {"alias": 2, "no_name": 1, "short": 1, "duplicate": 1}
    assert manifest["skipped_ids"]["duplicate"] == ["zdup.2 (same text as foo.2)"]
    assert manifest["skipped_ids"]["short"] == ["short.2"] and manifest["skipped_ids"]["no_name"] == ["noname.7"]
    assert manifest["files_read"] == len(tree) and manifest["pages"] == len(rows) == sum(manifest["counts"].values())

    foo = rows["foo.2"]
    assert foo["summary"] == "do a foo" and foo["section"] == "2" and foo["split"] == mp.split_of("foo.2")
    assert foo["text"].startswith("DESCRIPTION\nThe foo function: foow0 foow1")
    assert rows["baz.3"]["text"].endswith("NOTES\nIncluded text from part.")  # inline .so followed


def test_jsonl_fields_order_and_manifest(tree, tmp_path):
    out = tmp_path / "out"
    manifest = mp.build_manpages(out, files=tree)
    for split in mp.SPLITS:
        lines = (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines]
        assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
        assert all(set(r) == {"id", "text", "summary", "section", "split"} for r in rows)
        assert all(r["split"] == split == mp.split_of(r["id"]) for r in rows)
        assert all(isinstance(r[key], str) and r[key] for r in rows for key in r)
        assert manifest["counts"][split] == len(rows)
        assert manifest["sha256"][f"{split}.jsonl"] == hashlib.sha256((out / f"{split}.jsonl").read_bytes()).hexdigest()
    assert json.loads((out / mp.MANIFEST).read_text()) == manifest
    words = sorted(len(r["text"].split()) for r in _rows(out).values())
    assert manifest["statistics"]["text_words"]["max"] == words[-1]
    assert manifest["statistics"]["text_words"]["min"] == words[0] >= mp.MIN_WORDS
    with pytest.raises(ValueError, match="unknown split"):
        mp.load_manpages(out, "validation")


def test_build_is_deterministic_and_order_independent(tree, tmp_path):
    first = mp.build_manpages(tmp_path / "a", files=tree)
    second = mp.build_manpages(tmp_path / "b", files=list(reversed(tree)))
    assert first["checksum"] == second["checksum"]
    for name in [f"{s}.jsonl" for s in mp.SPLITS] + [mp.MANIFEST]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # a page keeps its split whatever else is in the set
    few = mp.build_manpages(tmp_path / "c", files=tree, pages=["fn03.3", "fn17.3"])
    assert sum(few["counts"].values()) == 2
    assert {r["id"]: r["split"] for r in _rows(tmp_path / "c").values()} == {
        pid: _rows(tmp_path / "a")[pid]["split"] for pid in ("fn03.3", "fn17.3")
    }


def test_limit_and_unknown_page(tree, tmp_path):
    manifest = mp.build_manpages(tmp_path / "out", files=tree, limit=5)
    assert manifest["files_read"] == 5 and manifest["rules"]["limit"] == 5
    with pytest.raises(mp.ManpagesError, match="no such page"):
        mp.build_manpages(tmp_path / "out", files=tree, pages=["nope.2"])


def test_bad_gzip_names_the_reinstall(tmp_path):
    bad = _write(tmp_path / "man" / "man2" / "bad.2", "x", gz=False).rename(tmp_path / "man" / "man2" / "bad.2.gz")
    with pytest.raises(mp.ManpagesError, match="not a valid gzip file .*apt-get install manpages manpages-dev"):
        mp.read_page(bad)
    page = _write(tmp_path / "man" / "man2" / "inc.2", _page("inc", "includes a bad file", 60, ".so man2/bad.2\n"))
    with pytest.raises(mp.ManpagesError, match="not a valid gzip file .*apt-get install"):  # also in a .so
        mp.read_page(page)


def test_missing_groff_names_its_package(tmp_path, monkeypatch):
    page = _write(tmp_path / "man" / "man2" / "foo.2", _page("foo", "do a foo", 60))
    monkeypatch.setattr(roff.shutil, "which", lambda name: None)
    with pytest.raises(mp.ManpagesUnavailable, match="apt-get install groff-base"):
        mp.read_page(page)


def test_missing_dpkg_names_the_install_command(monkeypatch):
    monkeypatch.setattr(mp.shutil, "which", lambda name: None)
    with pytest.raises(mp.ManpagesUnavailable, match="apt-get install manpages manpages-dev"):
        mp.package_files()


# --------------------------------------------------------------------------- the installed packages


@pytest.fixture(scope="module")
def installed():
    try:
        return mp.package_files()
    except mp.ManpagesUnavailable as error:
        pytest.skip(f"manpages/manpages-dev not installed: {error}")


def test_unknown_package_names_the_install_command(installed):
    with pytest.raises(mp.ManpagesUnavailable, match="apt-get install manpages manpages-dev"):
        mp.package_files(("no-such-package-longdoc",))


def test_real_pages(installed, tmp_path):
    ids = {mp.page_id(p) for p in installed}
    assert {"open.2", "creat.2", "ld.so.8"} <= ids
    assert not any("/man/man1/ls.1" in p.as_posix() for p in installed)  # coreutils' page is not listed
    manifest = mp.build_manpages(tmp_path / "out", pages=["open.2", "creat.2", "ld.so.8"])
    assert set(manifest["source"]["packages"]) == {"manpages", "manpages-dev"}
    assert manifest["skipped"]["alias"] == 1  # creat.2 is a symlink to open.2
    rows = _rows(tmp_path / "out")
    assert set(rows) == {"open.2", "ld.so.8"}
    assert rows["open.2"]["summary"] == "open and possibly create a file"
    assert rows["ld.so.8"]["summary"] == "dynamic linker/loader" and rows["ld.so.8"]["section"] == "8"
    text = rows["open.2"]["text"]
    assert text.startswith("LIBRARY\nStandard C library (libc, -lc)\n\nSYNOPSIS\n#include <fcntl.h>")
    assert "\nDESCRIPTION\nThe open() system call opens the file specified by pathname." in text
    assert "\nO_APPEND\n       The file is opened in append mode." in text  # a .TP tag, its text indented
    assert "\b" not in text and "\x1b" not in text  # no bold or underlining
    assert "renderer" in manifest["rules"] and manifest["rules"]["renderer"].startswith("GNU groff version")
    assert "\\f" not in text and not any(line.startswith((".", "'\\")) for line in text.splitlines())


def test_cli_builds_then_reuses(installed, tmp_path, capsys):
    out = tmp_path / "out"
    assert mp.main([str(out), "--limit", "40"]) == 0
    printed = capsys.readouterr()
    manifest = json.loads((out / mp.MANIFEST).read_text())
    assert f"train {manifest['counts']['train']}" in printed.out and manifest["files_read"] == 40
    assert mp.main([str(out), "--limit", "40"]) == 0
    assert "reusing" in capsys.readouterr().err
