"""The real classification sets the benchmarks and the defaults search run on, by name.

    paths, provenance = load_set("postgres-docs")   # {split: Path}, {"set", "packages", "checksum", ...}

Each set is built (or reused, checksums matching) by its module in `longdoc.data`; `provenance`
names the source packages with their versions and the set's combined checksum, which every
result file records (the registry moves on: linux-doc-6.1 6.1.176-1 gives another kernel-docs
set than 6.1.192-2).
"""

from __future__ import annotations

from pathlib import Path

SETS = ("kernel-docs", "postgres-docs", "man-sections")


def load_set(name: str, out_dir: Path | None = None) -> tuple[dict[str, Path], dict]:
    if name == "kernel-docs":
        from longdoc.datasets.kernel_docs import ensure_kernel_docs

        data = ensure_kernel_docs(out_dir)
        packages = [{"package": data.source.get("package"), "version": data.source.get("version")}]
        counts, labels = data.counts, list(data.labels)
    elif name in ("postgres-docs", "man-sections"):
        if name == "postgres-docs":
            from longdoc.datasets.postgres_docs import ensure_postgres_docs as ensure
        else:
            from longdoc.datasets.man_sections import ensure_man_sections as ensure
        data = ensure(out_dir)
        packages = [{"package": p["package"], "version": p["version"]} for p in data.source["packages"]]
        counts, labels = data.counts, data.labels
    else:
        raise SystemExit(f"unknown set {name!r}: choose one of {', '.join(SETS)}")
    provenance = {"set": name, "packages": packages, "checksum": data.checksum, "counts": dict(counts),
                  "classes": len(labels)}
    return dict(data.paths), provenance


def provenance_line(provenance: dict) -> str:
    packages = ", ".join(f"{p['package']} {p['version']}" for p in provenance["packages"])
    counts = "/".join(str(provenance["counts"][s]) for s in ("train", "dev", "test"))
    return (f"{provenance['set']} from {packages}: {provenance['classes']} classes, train/dev/test {counts}, "
            f"checksum {provenance['checksum']}")
