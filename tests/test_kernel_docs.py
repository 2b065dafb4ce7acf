"""The kernel documentation classification set (longdoc.datasets.kernel_docs), on fake trees, offline."""

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from longdoc.datasets import kernel_docs as kd

LONG = 1200  # words of a kept document (min_words is 1000)


def _text(name: str, words: int) -> str:
    """A distinct reStructuredText document of about ``words`` words."""
    title = f"{name} guide é中"
    body = " ".join(f"{name}-w{i}" for i in range(words))
    return f"{title}\n{'=' * len(title)}\n\n{body}   \n\n.. note:: kept as is\n"


def _write(path: Path, text: str | bytes, gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


@pytest.fixture
def docs(tmp_path) -> Path:
    """networking: 13 long (gz and plain, .rst and .txt) + 1 short; filesystems: 10 long, one nested,
    one with an SPDX line and a bad byte; mixed: 10 files but only 9 long; tiny: 9 long; a root-level
    file, a .yaml, a symlink."""
    root = tmp_path / "Documentation"
    for i in range(13):
        suffix = ".txt" if i == 12 else ".rst"
        _write(root / "networking" / f"net{i}{suffix}", _text(f"net{i}", LONG), gz=i % 2 == 0)
    _write(root / "networking" / "short.rst", _text("short", 990), gz=True)  # 999 words with title and note
    _write(root / "networking" / "bindings.yaml", _text("yaml", LONG), gz=True)
    (root / "networking" / "link.rst").symlink_to("net1.rst")
    for i in range(9):
        _write(root / "filesystems" / f"fs{i}.rst", _text(f"fs{i}", LONG), gz=True)
    spdx = ".. SPDX-License-Identifier: GPL-2.0\n\n" + _text("ext4", LONG)
    _write(root / "filesystems" / "ext4" / "ext4.rst", spdx.encode() + b"bad \xff byte\n", gz=True)
    for i in range(10):
        _write(root / "mixed" / f"m{i}.rst", _text(f"m{i}", LONG if i else 100))
    for i in range(9):
        _write(root / "tiny" / f"t{i}.rst", _text(f"t{i}", LONG))
    _write(root / "index.rst", _text("index", LONG), gz=True)
    return root


def _all(data: kd.KernelDocsSet) -> dict[str, dict]:
    return {d["id"]: {**d, "split": split} for split in kd.SPLITS for d in data.read(split)}


def test_labels_filtering_and_text(docs, tmp_path):
    data = kd.build_kernel_docs(tmp_path / "out", docs_dir=docs)
    rows = _all(data)
    assert data.labels == ("filesystems", "networking")
    expected = {f"networking/net{i}.rst" for i in range(12)} | {"networking/net12.txt"}
    expected |= {f"filesystems/fs{i}.rst" for i in range(9)} | {"filesystems/ext4/ext4.rst"}
    assert set(rows) == expected  # no root file, short doc, yaml, symlink, small or shrunk class
    assert all(row["label"] == row["id"].split("/")[0] for row in rows.values())

    ext4 = rows["filesystems/ext4/ext4.rst"]["text"]
    assert "SPDX" not in ext4 and ext4.startswith("ext4 guide é中\n=")  # leading blank line gone too
    assert "bad \ufffd byte" in ext4 and ext4.endswith("byte")
    net = rows["networking/net0.rst"]["text"]
    assert net == _text("net0", LONG).replace("   \n", "\n").rstrip("\n")  # rst kept, trailing spaces gone


def test_split_is_stratified_by_sha256(docs, tmp_path):
    data = kd.build_kernel_docs(tmp_path / "out", docs_dir=docs)
    rows = _all(data)
    # 13 networking docs: round(2.6) = 3 test, 3 dev, 7 train; 10 filesystems: 2, 2, 6
    assert data.class_counts == {
        "filesystems": {"train": 6, "dev": 2, "test": 2},
        "networking": {"train": 7, "dev": 3, "test": 3},
    }
    assert data.counts == {"train": 13, "dev": 5, "test": 5}
    for label, sizes in data.class_counts.items():
        ids = [i for i in rows if rows[i]["label"] == label]
        ids.sort(key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        order = ["test"] * sizes["test"] + ["dev"] * sizes["dev"] + ["train"] * sizes["train"]
        assert [rows[i]["split"] for i in ids] == order


def test_files_are_deterministic_and_checksummed(docs, tmp_path):
    first = kd.build_kernel_docs(tmp_path / "a", docs_dir=docs)
    second = kd.build_kernel_docs(tmp_path / "b", docs_dir=docs)
    for name in ["train.jsonl", "dev.jsonl", "test.jsonl", kd.MANIFEST]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first.checksum == second.checksum and first.checksums == second.checksums

    raw = first.paths["train"].read_bytes()
    lines = raw.decode("utf-8").split("\n")
    assert lines[-1] == "" and "\r" not in raw.decode("utf-8")
    rows = [json.loads(line) for line in lines[:-1]]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert lines[0] == json.dumps(rows[0], ensure_ascii=False, sort_keys=True)
    assert "é中".encode() in raw  # not \u-escaped

    assert first.checksums["train.jsonl"] == hashlib.sha256(raw).hexdigest()
    sums = "".join(f"{first.checksums[n]}  {n}\n" for n in ["dev.jsonl", "test.jsonl", "train.jsonl"])
    assert first.checksum == hashlib.sha256(sums.encode()).hexdigest()
    manifest = json.loads(first.manifest_path.read_text())
    assert manifest["rules"]["min_words"] == 1000 and manifest["documents"] == 23
    assert manifest["median_words"] == first.median_words > 1000


def test_ensure_reuses_and_rebuilds(docs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    built = kd.ensure_kernel_docs(out, docs_dir=docs, cache_dir=tmp_path / "cache")
    original = built.paths["dev"].read_bytes()

    real_build = kd.build_kernel_docs
    calls = []
    monkeypatch.setattr(kd, "build_kernel_docs", lambda *a, **k: calls.append(a) or real_build(*a, **k))
    again = kd.ensure_kernel_docs(out, docs_dir=docs)
    assert calls == [] and again == built

    built.paths["dev"].write_bytes(original.replace(b"net", b"NET", 1))  # tampered: checksum mismatch
    rebuilt = kd.ensure_kernel_docs(out, docs_dir=docs)
    assert len(calls) == 1 and built.paths["dev"].read_bytes() == original and rebuilt == built

    other = kd.ensure_kernel_docs(out, docs_dir=docs, min_class_size=11)  # other rules: rebuild
    assert len(calls) == 2 and other.labels == ("networking",)


def test_ensure_defaults_to_the_cache_folder(docs, tmp_path, monkeypatch):
    monkeypatch.setenv("LONGDOC_CACHE", str(tmp_path / "c"))
    data = kd.ensure_kernel_docs(docs_dir=docs)
    assert data.out_dir == tmp_path / "c" / "kernel-docs" / "dataset" and data.paths["test"].is_file()


def test_build_rejects_trees_without_documents(tmp_path):
    (tmp_path / "empty" / "networking").mkdir(parents=True)
    with pytest.raises(kd.KernelDocsError, match="no documents left"):
        kd.build_kernel_docs(tmp_path / "out", docs_dir=tmp_path / "empty")
    with pytest.raises(kd.KernelDocsError, match="not a folder"):
        kd.build_kernel_docs(tmp_path / "out", docs_dir=tmp_path / "missing")


def test_plain_and_gzipped_copies_of_one_file_are_an_error(docs, tmp_path):
    _write(docs / "networking" / "net0.rst", "duplicate")  # net0.rst.gz exists
    with pytest.raises(kd.KernelDocsError, match="both plain and gzipped"):
        kd.build_kernel_docs(tmp_path / "out", docs_dir=docs)


# --------------------------------------------------------------------------- .deb handling


def _ar(members: dict[str, bytes]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def _tar(files: dict[str, bytes], mode: str, links: dict[str, str] = {}) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


DOCS_PREFIX = "./usr/share/doc/linux-doc-6.1/Documentation"


def _fake_deb(path: Path, compression: str = "xz", unsafe: bool = False) -> Path:
    """A linux-doc-6.1 .deb written by hand: 10 long networking docs, a symlink, and optionally a
    member escaping the destination (which dpkg-deb refuses outright)."""
    files = {
        f"{DOCS_PREFIX}/networking/n{i}.rst.gz": gzip.compress(_text(f"n{i}", LONG).encode(), mtime=0)
        for i in range(10)
    }
    if unsafe:
        files["../escape.txt"] = b"must not be written outside the destination"
    data = _tar(files, f"w:{compression}", links={f"{DOCS_PREFIX}/Changes.gz": "networking/n0.rst.gz"})
    control = _tar({"./control": b"Package: linux-doc-6.1\n"}, "w:xz")
    path.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": control, f"data.tar.{compression}": data}))
    return path


@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_pure_python_unpacking(tmp_path, compression):
    deb = _fake_deb(tmp_path / "linux-doc-6.1_6.1.1-1_all.deb", compression, unsafe=True)
    dest = tmp_path / "root" / "x"
    kd.unpack_deb(deb, dest, use_dpkg=False)
    docs = dest / DOCS_PREFIX
    assert gzip.decompress((docs / "networking" / "n3.rst.gz").read_bytes()).decode() == _text("n3", LONG)
    assert (docs / "Changes.gz").is_symlink()
    assert not (tmp_path / "root" / "escape.txt").exists()
    assert len(kd.collect_documents(docs)) == 10


def test_pure_python_unpacking_rejects_non_debs(tmp_path):
    bogus = tmp_path / "bogus.deb"
    bogus.write_bytes(b"<html>404</html>")
    with pytest.raises(kd.KernelDocsError, match="not a .deb"):
        kd.unpack_deb(bogus, tmp_path / "x", use_dpkg=False)
    bogus.write_bytes(_ar({"debian-binary": b"2.0\n"}))
    with pytest.raises(kd.KernelDocsError, match="no data.tar"):
        kd.unpack_deb(bogus, tmp_path / "x", use_dpkg=False)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_pure_python_unpacking_matches_dpkg_deb(tmp_path):
    package = tmp_path / "pkg"
    control = "Package: linux-doc-6.1\nVersion: 1\nArchitecture: all\nMaintainer: x <x@x>\nDescription: test\n"
    _write(package / "DEBIAN" / "control", control)
    _write(package / DOCS_PREFIX / "networking" / "a.rst", _text("a", 50), gz=True)
    _write(package / DOCS_PREFIX / "index.rst", "root", gz=True)
    deb = tmp_path / "t.deb"
    build = ["dpkg-deb", "--root-owner-group", "--build", str(package), str(deb)]
    subprocess.run(build, check=True, capture_output=True)
    kd.unpack_deb(deb, tmp_path / "py", use_dpkg=False)
    kd.unpack_deb(deb, tmp_path / "dpkg", use_dpkg=True)
    tree = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert tree(tmp_path / "py") == tree(tmp_path / "dpkg") and len(tree(tmp_path / "py")) == 2


def _copy_cmd(deb: Path) -> list[str]:
    """A stand-in for `apt-get download`: puts ``deb`` into the working directory."""
    return [sys.executable, "-c", "import shutil, sys; shutil.copy(sys.argv[1], '.')", str(deb)]


FAILING_APT = [  # what `apt-get download` does when the package lists are missing
    sys.executable, "-c", "import sys; sys.stderr.write('E: Unable to locate package linux-doc-6.1\\n'); sys.exit(100)"
]


@pytest.mark.parametrize("with_dpkg", [True, False])
def test_find_documentation_downloads_unpacks_and_reuses(tmp_path, capsys, monkeypatch, with_dpkg):
    if with_dpkg and shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    if not with_dpkg:  # the pure-Python unpacker takes over
        monkeypatch.setattr(kd.shutil, "which", lambda name: None)
    deb = _fake_deb(tmp_path / "linux-doc-6.1_6.1.9-3_all.deb")
    cache = tmp_path / "cache"
    docs = kd.find_documentation(cache, system_dirs=(), download_cmd=_copy_cmd(deb))
    assert docs == cache / "unpacked" / kd.DOCS_IN_PACKAGE and (docs / "networking" / "n0.rst.gz").is_file()
    assert "downloading" in capsys.readouterr().err

    assert kd.find_documentation(cache, system_dirs=(), download_cmd=FAILING_APT) == docs  # cached
    data = kd.build_kernel_docs(tmp_path / "out", docs_dir=docs)
    assert data.source["package"] == "linux-doc-6.1" and data.source["version"] == "6.1.9-3"
    assert data.source["deb_sha256"] == hashlib.sha256(deb.read_bytes()).hexdigest()

    shutil.rmtree(cache / "unpacked")  # the .deb is still there: unpacked again, not downloaded
    assert kd.find_documentation(cache, system_dirs=(), download_cmd=FAILING_APT) == docs


def test_find_documentation_prefers_the_installed_tree(docs, tmp_path):
    system_dirs = (tmp_path / "nowhere", docs)
    found = kd.find_documentation(tmp_path / "cache", system_dirs=system_dirs, download_cmd=FAILING_APT)
    assert found == docs and not (tmp_path / "cache").exists()


def test_failed_download_is_a_clear_error(tmp_path):
    with pytest.raises(kd.KernelDocsUnavailable) as error:
        kd.find_documentation(tmp_path / "cache", system_dirs=(tmp_path / "nowhere",), download_cmd=FAILING_APT)
    message = str(error.value)
    assert "E: Unable to locate package linux-doc-6.1" in message  # apt's own words
    assert "exit status 100" in message and "apt-get update" in message and "--docs" in message
    assert str(tmp_path / "nowhere") in message  # what was tried
    assert isinstance(error.value, RuntimeError)

    with pytest.raises(kd.KernelDocsUnavailable, match="not available on this machine"):
        missing = [str(tmp_path / "no-apt-get"), "download"]
        kd.find_documentation(tmp_path / "cache", system_dirs=(), download_cmd=missing)
    with pytest.raises(kd.KernelDocsUnavailable, match="left no linux-doc-6.1_"):
        kd.find_documentation(tmp_path / "cache", system_dirs=(), download_cmd=[sys.executable, "-c", "pass"])


def test_truncated_download_says_to_delete_it(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "linux-doc-6.1_6.1.9-3_all.deb").write_bytes(_fake_deb(tmp_path / "d.deb").read_bytes()[:5000])
    with pytest.raises(kd.KernelDocsError, match="delete .* and retry"):
        kd.find_documentation(cache, system_dirs=())
    assert not (cache / "unpacked").exists() and not (cache / "unpacked.json").exists()


def test_command_line(docs, tmp_path, capsys):
    assert kd.main(["--docs", str(docs), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "23 documents, 2 classes" in out and "train 13, dev 5, test 5" in out and "networking 13" in out
    assert kd.main(["--docs", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 1
    assert "error:" in capsys.readouterr().err
