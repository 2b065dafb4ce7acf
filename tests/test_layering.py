"""The package's layers: every module imports only from its own layer or below, and no two modules
import each other, directly or through others. Imports are read from the source (ast), wherever
they are in a module (a function-level import is a dependency too), so nothing is imported here.

    L0 errors, runtime, logs, assets     L4 families, pipelines
    L1 data, datasets, metrics,           L5 tasks
       attention, heads                   L6 training
    L2 models                             L7 cli
    L3 convert                            L8 demo, demo_qa, the package's own __init__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src" / "longdoc"

LAYERS = {
    "errors": 0, "runtime": 0, "logs": 0, "assets": 0,
    "data": 1, "datasets": 1, "metrics": 1, "attention": 1, "heads": 1,
    "models": 2,
    "convert": 3,
    "families": 4, "pipelines": 4,
    "tasks": 5,
    "training": 6,
    "cli": 7, "serve": 7, "export": 7,  # cli imports serve and export; serve imports export (never back)
    "demo": 8, "demo_qa": 8, "": 8,  # "": longdoc/__init__.py, which offers everything
}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under `root` (a package folder named like the package)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that the module `name` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = module_names(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    if top not in LAYERS:
        raise AssertionError(f"{module}: {top!r} has no layer; add it to LAYERS in tests/test_layering.py "
                             f"and to docs/architecture.md")
    return LAYERS[top]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{module} (L{layer_of(module)}) imports {target} (L{layer_of(target)})"
            for module, targets in sorted(graph.items()) for target in sorted(targets)
            if layer_of(target) > layer_of(module)]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(import_graph(SOURCE)) == []


def test_no_import_cycles():
    assert import_cycles(import_graph(SOURCE)) == []


def test_the_checker_finds_upward_imports_and_cycles(tmp_path):
    """A made-up package with one of each: a model importing a pipeline, and two modules of one
    layer importing each other through a function-level import."""
    root = tmp_path / "longdoc"
    files = {
        "__init__.py": "",
        "models/__init__.py": "",
        "models/net.py": "def predict():\n    from ..pipelines.base import Pipeline\n",
        "pipelines/__init__.py": "",
        "pipelines/base.py": "from longdoc.models import net\n",
        "families/__init__.py": "",
        "families/a.py": "from . import b\n",
        "families/b.py": "def f():\n    from .a import x\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    graph = import_graph(root)
    assert graph["longdoc.pipelines.base"] == {"longdoc.models.net"}
    assert upward_imports(graph) == ["longdoc.models.net (L2) imports longdoc.pipelines.base (L4)"]
    assert import_cycles(graph) == [["longdoc.families.a", "longdoc.families.b"],
                                    ["longdoc.models.net", "longdoc.pipelines.base"]]


def test_a_module_outside_every_layer_is_named():
    with pytest.raises(AssertionError, match="'serving' has no layer"):
        layer_of("longdoc.serving.app")
